//! The `watches` section (SPEC §2.3): named Consul services polled every `interval`.

use std::collections::HashSet;
use std::time::Duration;

use super::jobs::check_service_name;
use super::obj::{expected, explicit_name, invalid, shown, Obj};
use super::{Result, Validator, MAX_LABELLED_NAME};
use crate::config::tree::Node;
use crate::config::WatchConfig;

const WATCH_KEYS: &[&str] = &["name", "interval", "tag", "dc"];

impl Validator<'_> {
    pub(super) fn watches(&mut self, top: &Obj, discovery: bool) -> Result<Vec<WatchConfig>> {
        let Some(list) = top.array("watches")? else {
            return Ok(Vec::new());
        };
        if !list.is_empty() && !discovery {
            return Err(invalid(
                "watches need a consul backend: add a top-level 'consul' \
                 (e.g. consul: \"localhost:8500\") or set CONSUL_HTTP_ADDR",
            ));
        }
        let mut out: Vec<WatchConfig> = Vec::new();
        let mut seen = HashSet::new();
        for (i, node) in list.iter().enumerate() {
            let w = self.watch(i, node)?;
            if !seen.insert(w.name.clone()) {
                return Err(invalid(format!(
                    "watch[{}] is defined more than once; watch names must be unique",
                    shown(&w.name)
                )));
            }
            out.push(w);
        }
        Ok(out)
    }

    fn watch(&mut self, i: usize, node: &Node) -> Result<WatchConfig> {
        let index = format!("watches[{i}]");
        if !matches!(node, Node::Object(_)) {
            return Err(expected(&index, "an object", node));
        }
        let name = match explicit_name(&index, node)? {
            Some(n) => n,
            None => return Err(invalid(format!("{index}.name is required"))),
        };
        let label = if name.len() <= MAX_LABELLED_NAME {
            format!("watch[{name}]")
        } else {
            index
        };
        let o = self.obj(label, node, WATCH_KEYS)?;
        check_service_name(&o.at("name"), &name, "")?;
        let interval = match o.duration("interval")? {
            None => return Err(invalid(format!("{} is required", o.at("interval")))),
            Some(Duration::ZERO) => {
                return Err(invalid(format!("{} must be > 0", o.at("interval"))))
            }
            Some(d) => d,
        };
        Ok(WatchConfig {
            name,
            interval,
            tag: o.str("tag")?.map(str::to_string),
            dc: o.str("dc")?.map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::testutil::*;

    #[test]
    fn watches_section() {
        let c = cfg(
            "{consul: 'c:1', watches: [{name: 'db', interval: 5, tag: 'primary', dc: 'east'}, \
                     {name: 'cache', interval: '500ms'}]}",
        );
        assert_eq!(
            c.watches,
            [
                WatchConfig {
                    name: "db".into(),
                    interval: secs(5),
                    tag: Some("primary".into()),
                    dc: Some("east".into())
                },
                WatchConfig {
                    name: "cache".into(),
                    interval: Duration::from_millis(500),
                    tag: None,
                    dc: None
                },
            ]
        );
        let e = |w: &str| err1(&format!("{{consul: 'c:1', watches: [{w}]}}"));
        assert_eq!(e("{interval: 5}"), "watches[0].name is required");
        assert_eq!(e("'db'"), "watches[0] must be an object, got string \"db\"");
        assert_eq!(e("{name: 'db'}"), "watch[db].interval is required");
        assert_eq!(
            e("{name: 'db', interval: 0}"),
            "watch[db].interval must be > 0"
        );
        assert!(e("{name: 'Db', interval: 1}")
            .starts_with("watch[Db].name 'Db' is not a valid service name"));
        assert_eq!(
            e("{name: 'db', interval: 1}, {name: 'db', interval: 2}"),
            "watch[db] is defined more than once; watch names must be unique"
        );
        assert_eq!(
            e("{name: 'db', interval: 1, tag: 3}"),
            "watch[db].tag must be a string, got integer 3"
        );
    }

    #[test]
    fn watches_need_consul() {
        assert_eq!(
            err1("{watches: [{name: 'db', interval: 5}]}"),
            "watches need a consul backend: add a top-level 'consul' (e.g. consul: \"localhost:8500\") \
             or set CONSUL_HTTP_ADDR"
        );
        // An empty list is fine.
        assert!(cfg("{watches: []}").watches.is_empty());
    }
}
