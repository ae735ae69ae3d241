//! Reading the node tree: [`Obj`] opens an object at a path, warns about
//! unknown and repeated keys (with a did-you-mean), and reads typed values
//! the way 3.x's weak decoding did; plus the shared message helpers.

use std::time::Duration;

use super::super::duration;
use super::super::tree::{self, Node};
use super::{ConfigError, Result, Validator};
pub(super) use crate::config::parse_bool;

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
        // Only known keys are tracked, so this costs nothing per unknown key
        // (a repeated unknown key is simply unknown again).
        let mut seen = vec![false; known.len()];
        for (key, _) in pairs {
            match known.iter().position(|k| k == key) {
                Some(i) if seen[i] => {
                    let at = o.at(key);
                    self.warn(format!("{at}: duplicate key; the last value is used"));
                }
                Some(i) => seen[i] = true,
                None if self.room_for_warning() => {
                    let at = o.at(&shown(key));
                    let mut msg = format!("{at}: unknown key");
                    if let Some((_, hint)) = HINTS.iter().find(|(suffix, _)| at.ends_with(suffix)) {
                        msg.push_str(&format!(" ({hint})"));
                    } else if let Some(s) =
                        suggest_within(key, known.iter().copied(), &mut self.suggest_budget)
                    {
                        msg.push_str(&format!(", did you mean '{s}'?"));
                    }
                    self.warn(msg);
                }
                None => {}
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
            Some(Node::Str(s)) => match parse_bool(s) {
                Some(b) => Ok(Some(b)),
                None => Err(invalid(format!(
                    "{} must be true or false, got \"{}\"",
                    self.at(key),
                    shown(s)
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
                let s = s.trim();
                match (duration::parse(s), s.strip_prefix('-')) {
                    (Ok(d), _) => d,
                    // A well-formed negative duration: say what is wrong with it.
                    (Err(_), Some(abs)) if duration::parse(abs).is_ok() => {
                        return Err(invalid(format!("{path} must be >= 0, got \"{s}\"")))
                    }
                    (Err(e), _) => return Err(invalid(format!("{path}: {e}"))),
                }
            }
            Some(Node::Int(n)) if *n < 0 => {
                return Err(invalid(format!("{path} must be >= 0, got {n}")))
            }
            Some(Node::Int(n)) => Duration::from_secs(n.unsigned_abs()),
            Some(Node::Float(f)) if *f < 0.0 => {
                return Err(invalid(format!("{path} must be >= 0, got {f}")))
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

    /// An integer, or a string of one (3.x's weak decoding); a whole JSON
    /// fraction (`2.0`) counts too. Range checks are the caller's.
    pub(super) fn integer(&self, key: &str) -> Result<Option<i128>> {
        match self.get(key) {
            None => Ok(None),
            Some(Node::Str(s)) if s.is_empty() => Ok(None),
            Some(n @ Node::Str(s)) => match s.trim().parse() {
                Ok(i) => Ok(Some(i)),
                Err(_) => Err(expected(&self.at(key), "an integer", n)),
            },
            Some(Node::Int(n)) => Ok(Some(i128::from(*n))),
            Some(Node::Float(f)) if f.fract() == 0.0 && f.abs() < 1e18 => Ok(Some(*f as i128)),
            Some(n) => Err(expected(&self.at(key), "an integer", n)),
        }
    }

    /// A TCP port, 1 to 65535 (a numeric string too, as 3.x's weak decoding).
    pub(super) fn port(&self, key: &str) -> Result<Option<u16>> {
        let Some(n) = self.integer(key)? else {
            return Ok(None);
        };
        match u16::try_from(n) {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => Err(invalid(format!(
                "{} must be from 1 to 65535, got {n}",
                self.at(key)
            ))),
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

/// `value` for a message: as is when short, else its start and `...`, so
/// that a hostile megabyte never ends up in a message twice.
pub(super) fn shown(value: &str) -> String {
    const MAX: usize = 64;
    if value.len() <= MAX {
        return value.to_string();
    }
    let mut end = MAX - 4;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &value[..end])
}

/// `{path} must be one of 'a', 'b' or 'c', got 'x'`, plus the value probably
/// meant when one is close.
pub(super) fn one_of(path: &str, got: &str, allowed: &[&str]) -> ConfigError {
    let list = quoted_list(allowed, "or");
    let mut msg = format!("{path} must be one of {list}, got '{}'", shown(got));
    msg.push_str(&did_you_mean(got, allowed));
    invalid(msg)
}

/// `'a', 'b' and 'c'` (with `and` or `or`).
pub(super) fn quoted_list<S: AsRef<str>>(items: &[S], conjunction: &str) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{}'", s.as_ref())).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} {conjunction} {last}", rest.join(", ")),
    }
}

/// `; did you mean 'x'?` when one of `known` is close to `got`, else nothing.
pub(super) fn did_you_mean(got: &str, known: &[&str]) -> String {
    match suggest(got, known.iter().copied()) {
        Some(s) => format!("; did you mean '{s}'?"),
        None => String::new(),
    }
}

/// Strings longer than this get no did-you-mean: nobody mistypes a key that
/// long, and comparing costs in proportion to the length (issue #12: a 4 MB
/// unknown key took 9.6 s and 569 MB).
const MAX_SUGGESTED: usize = 64;
/// What one `suggest` may spend, in candidates looked at plus table cells
/// filled; ample for the fixed lists of keys and values.
const ONE_SUGGESTION: usize = 1 << 20;

/// The known key `key` was probably meant to be: the same but for case, or
/// within two edits (and fewer edits than the key has letters).
pub(super) fn suggest<'k>(key: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    let mut budget = ONE_SUGGESTION;
    suggest_within(key, known, &mut budget)
}

/// `suggest`, spending at most `budget` (candidates looked at plus table
/// cells filled) and taking what it spent from it: a config with many
/// unknown names among many candidates stops getting suggestions rather than
/// costing time in proportion to their product.
pub(super) fn suggest_within<'k>(
    key: &str,
    known: impl IntoIterator<Item = &'k str>,
    budget: &mut usize,
) -> Option<&'k str> {
    closest(key, known, budget).map(|(_, k)| k)
}

/// The candidate `suggest_within` would give, and its distance.
pub(super) fn closest<'k>(
    key: &str,
    known: impl IntoIterator<Item = &'k str>,
    budget: &mut usize,
) -> Option<(usize, &'k str)> {
    if key.len() > MAX_SUGGESTED {
        return None;
    }
    let mut a = ['\0'; MAX_SUGGESTED];
    let mut a_len = 0;
    for c in key.chars() {
        a[a_len] = c.to_ascii_lowercase();
        a_len += 1;
    }
    let a = &a[..a_len];
    let mut best: Option<(usize, &'k str)> = None;
    for k in known {
        // A char is 1 to 4 bytes and an edit changes the length by one char.
        let cost = if k.len() > 4 * (a.len() + 2) || k.len() + 2 < a.len() {
            1
        } else {
            1 + k.len()
        };
        if *budget < cost {
            *budget = 0;
            break;
        }
        *budget -= cost;
        if cost == 1 {
            continue;
        }
        let mut b = ['\0'; MAX_SUGGESTED + 2];
        let mut b_len = 0;
        for c in k.chars() {
            if b_len == b.len() {
                break;
            }
            b[b_len] = c.to_ascii_lowercase();
            b_len += 1;
        }
        if b_len == b.len() && k.chars().count() > b.len() {
            continue;
        }
        let b = &b[..b_len];
        if a.len().abs_diff(b.len()) > 2 {
            continue;
        }
        let cells = a.len() * b.len();
        if *budget < cells {
            *budget = 0;
            break;
        }
        *budget -= cells;
        let d = edit_distance(a, b);
        if d <= 2 && (d == 0 || d < a.len()) && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, k));
            if d == 0 {
                break;
            }
        }
    }
    best
}

/// Optimal string alignment distance (Levenshtein plus adjacent
/// transpositions), in three short rows on the stack: both strings are at
/// most `MAX_SUGGESTED + 2` chars.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    // Row i of the table is rows[i % 3]; distances fit in a byte.
    let mut rows = [[0u8; MAX_SUGGESTED + 3]; 3];
    let (a, b) = (
        &a[..a.len().min(MAX_SUGGESTED + 2)],
        &b[..b.len().min(MAX_SUGGESTED + 2)],
    );
    for (j, cell) in rows[0][..=b.len()].iter_mut().enumerate() {
        *cell = j as u8;
    }
    for i in 1..=a.len() {
        let (two_up, prev, cur) = ((i + 1) % 3, (i + 2) % 3, i % 3);
        rows[cur][0] = i as u8;
        for j in 1..=b.len() {
            let cost = u8::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[prev][j] + 1)
                .min(rows[cur][j - 1] + 1)
                .min(rows[prev][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[two_up][j - 2] + 1);
            }
            rows[cur][j] = best;
        }
    }
    usize::from(rows[a.len() % 3][b.len()])
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
                       restartDelya: 1, restartdelaymax: 2, shutdownon: 'exit', \
                       notify: {watchdgo: 5}, \
                       when: {once: 'startup', tiemout: 1}, \
                       health: {exec: 'c', interval: 5, ttl: 10, tll: 1, logging: {rwa: true}, \
                                startperiod: 1, treshold: 2, htpp: 'x'}, \
                       consul: {enableTagOverides: true}, logging: {Raw: true, kepe: 5}}, \
                      {name: 'b', exec: 'x', when: {alll: ['app'], once: 'startup'}}], \
               watches: [{name: 'db', interval: 5, datacenter: 'x'}], \
               telemetry: {prot: 1, metrics: [{name: 'm', type: 'gauge', hepl: 'x'}]}, \
               extra: {} }",
        );
        let expected = [
            "consul.tokn: unknown key, did you mean 'token'?",
            "consul.tls.verfy: unknown key, did you mean 'verify'?",
            "consul.tls is set, but the Consul agent's address c:1 is http: the tls settings \
             are not used (give an https:// address or scheme: \"https\")",
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
            "job[app].restartDelya: unknown key, did you mean 'restartDelay'?",
            "job[app].restartdelaymax: unknown key, did you mean 'restartDelayMax'?",
            "job[app].shutdownon: unknown key, did you mean 'shutdownOn'?",
            "job[app].notify.watchdgo: unknown key, did you mean 'watchdog'?",
            "job[app].health.startperiod: unknown key, did you mean 'startPeriod'?",
            "job[app].health.treshold: unknown key, did you mean 'threshold'?",
            "job[app].health.htpp: unknown key, did you mean 'http'?",
            "job[app].logging.kepe: unknown key, did you mean 'keep'?",
            "job[b].when.alll: unknown key, did you mean 'all'?",
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
        assert_eq!(suggest("tll", ["ttl", "timeout"]), Some("ttl"));
        assert_eq!(suggest("INTERVAL", ["interval"]), Some("interval"));
        assert_eq!(suggest("tlt", ["ttl"]), Some("ttl"));
        assert_eq!(suggest("xyz", ["ttl"]), None);
        // Two edits on a two-letter key would match anything.
        assert_eq!(suggest("ab", ["dc"]), None);
        let d = |a: &str, b: &str| {
            let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            edit_distance(&a, &b)
        };
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("ab", "ba"), 1);
        assert_eq!(d("ca", "abc"), 3);
        assert_eq!(d("restartDelya", "restartDelay"), 1);
        assert_eq!(d("é", "e"), 1);
    }

    // -- bounds (issue #12) ---------------------------------------------------------

    #[test]
    fn long_strings_get_no_suggestion() {
        let candidate = "a".repeat(64);
        // 64 bytes, one edit away: suggested.
        let near = format!("{}x", "a".repeat(63));
        assert_eq!(
            suggest(&near, [candidate.as_str()]),
            Some(candidate.as_str())
        );
        // 65 bytes: not even looked at.
        assert_eq!(suggest(&format!("{near}y"), [candidate.as_str()]), None);
        // Neither a long candidate.
        assert_eq!(suggest("ab", ["ab".repeat(1000).as_str()]), None);
    }

    #[test]
    fn suggestions_stop_when_the_budget_is_spent() {
        let mut budget = 0;
        assert_eq!(suggest_within("tll", ["ttl"], &mut budget), None);
        // "tll" against "ttl": one look, three bytes, nine cells.
        let mut budget = 1 + 3 + 9;
        assert_eq!(suggest_within("tll", ["ttl"], &mut budget), Some("ttl"));
        assert_eq!(budget, 0);
        let mut budget = 1 + 3 + 8;
        assert_eq!(suggest_within("tll", ["ttl"], &mut budget), None);
        // Candidates of the wrong length cost one look each.
        let mut budget = 100;
        let many = vec!["a-very-long-candidate"; 50];
        assert_eq!(
            suggest_within("tll", many.iter().copied(), &mut budget),
            None
        );
        assert_eq!(budget, 50);
    }

    #[test]
    fn warnings_are_capped_and_the_rest_counted() {
        let keys: Vec<String> = (0..1500).map(|i| format!("k{i}: 1")).collect();
        let w = warnings(&format!("{{{}}}", keys.join(", ")));
        assert_eq!(w.len(), 1001);
        assert_eq!(w[0], "k0: unknown key");
        assert_eq!(w[999], "k999: unknown key");
        assert_eq!(
            w[1000],
            "500 more warnings not shown (only the first 1000 are)"
        );
        // An error still carries the kept ones as notes.
        let e = err(&format!("{{{}, stopTimeout: 'x'}}", keys.join(", ")));
        assert_eq!(e.lines().count(), 1 + 1001, "{}", &e[..200]);
    }

    #[test]
    fn a_long_unknown_key_is_shown_cut_short() {
        let key = "k".repeat(1 << 20);
        let w = warnings(&format!(
            "{{{key}: 1, jobs: [{{name: 'a', exec: 'x', {key}: 2}}]}}"
        ));
        assert_eq!(
            w,
            [
                format!("{}...: unknown key", "k".repeat(60)),
                format!("job[a].{}...: unknown key", "k".repeat(60)),
            ]
        );
    }

    #[test]
    fn a_repeated_unknown_key_is_unknown_each_time() {
        assert_eq!(
            warnings("{x: 1, x: 2}"),
            ["x: unknown key", "x: unknown key"]
        );
    }
}
