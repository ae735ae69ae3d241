//! The `telemetry` section (SPEC §5) and its user metrics: Prometheus
//! names, types, histogram buckets and summary objectives.

use std::collections::HashSet;

use super::obj::{expected, invalid, number, one_of, Obj};
use super::{Result, Validator};
use crate::config::interfaces;
use crate::config::tree::Node;
use crate::config::{JobConfig, MetricConfig, MetricKind, TelemetryConfig, TELEMETRY_SERVICE};

const TELEMETRY_KEYS: &[&str] = &["port", "interfaces", "tags", "metrics"];
const METRIC_KEYS: &[&str] = &[
    "namespace",
    "subsystem",
    "name",
    "help",
    "type",
    "buckets",
    "objectives",
];

const DEFAULT_TELEMETRY_PORT: u16 = 9090;

/// Metric families the binary always exports (see `metrics.rs`); a user
/// metric of the same name would make the exposition invalid.
const BUILTIN_METRICS: &[&str] = &[
    "containerpilot_control_http_requests",
    "containerpilot_watch_instances",
    "containerpilot_job_restarts_total",
    "containerpilot_job_exits_total",
    "containerpilot_job_healthy",
    "containerpilot_job_health_check_duration_seconds",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
];

impl Validator<'_> {
    pub(super) fn telemetry(
        &mut self,
        top: &Obj,
        jobs: &[JobConfig],
    ) -> Result<Option<TelemetryConfig>> {
        let Some(t) = self.obj_opt(top, "telemetry", TELEMETRY_KEYS)? else {
            return Ok(None);
        };
        if jobs.iter().any(|j| j.name == TELEMETRY_SERVICE) {
            return Err(invalid(format!(
                "job[{TELEMETRY_SERVICE}]: the name '{TELEMETRY_SERVICE}' belongs to the \
                 telemetry service when 'telemetry' is configured; rename the job"
            )));
        }
        let port = t.port("port")?.unwrap_or(DEFAULT_TELEMETRY_PORT);
        let interfaces = t
            .strings("interfaces")?
            .unwrap_or_else(interfaces::default_specs);
        let address = interfaces::resolve(&interfaces, self.addrs)
            .map_err(|e| invalid(format!("{}: {e}", t.at("interfaces"))))?;
        let mut metrics: Vec<MetricConfig> = Vec::new();
        let mut seen = HashSet::new();
        for (i, node) in t.array("metrics")?.unwrap_or_default().iter().enumerate() {
            let path = format!("{}[{i}]", t.at("metrics"));
            let m = self.metric(path.clone(), node)?;
            if !seen.insert(m.name.clone()) {
                return Err(invalid(format!(
                    "{path}: the metric '{}' is defined more than once; metric names must be unique",
                    m.name
                )));
            }
            metrics.push(m);
        }
        Ok(Some(TelemetryConfig {
            port,
            interfaces,
            address,
            tags: t.strings("tags")?.unwrap_or_default(),
            metrics,
        }))
    }

    /// `buckets` is a list of upper bounds, strictly increasing (`+Inf` is
    /// always added). `objectives` is an object of quantile → allowed error,
    /// as Prometheus's Go client takes them: `{"0.5": 0.05, "0.99": 0.001}`.
    fn metric(&mut self, path: String, node: &Node) -> Result<MetricConfig> {
        let m = self.obj(path, node, METRIC_KEYS)?;
        let Some(short) = m.str("name")? else {
            return Err(invalid(format!("{} is required", m.at("name"))));
        };
        let name = [m.str("namespace")?, m.str("subsystem")?, Some(short)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("_");
        if !is_prometheus_name(&name) {
            return Err(invalid(format!(
                "{}: '{name}' is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                m.path
            )));
        }
        if BUILTIN_METRICS.contains(&name.as_str()) {
            return Err(invalid(format!(
                "{}: '{name}' is a metric containerpilot exports itself; choose another name",
                m.path
            )));
        }
        let kind = match m.str("type")? {
            Some("counter") => MetricKind::Counter,
            Some("gauge") => MetricKind::Gauge,
            Some("histogram") => MetricKind::Histogram,
            Some("summary") => MetricKind::Summary,
            Some(other) => {
                let kinds = &["counter", "gauge", "histogram", "summary"];
                return Err(one_of(&m.at("type"), other, kinds));
            }
            None => return Err(invalid(format!("{} is required", m.at("type")))),
        };
        let buckets = m
            .get("buckets")
            .map(|n| buckets(&m.at("buckets"), n))
            .transpose()?;
        if buckets.is_some() && kind != MetricKind::Histogram {
            return Err(invalid(format!(
                "{} is only for histograms",
                m.at("buckets")
            )));
        }
        let objectives = m
            .get("objectives")
            .map(|n| objectives(&m.at("objectives"), n))
            .transpose()?;
        if objectives.is_some() && kind != MetricKind::Summary {
            return Err(invalid(format!(
                "{} is only for summaries",
                m.at("objectives")
            )));
        }
        Ok(MetricConfig {
            name,
            help: m.str("help")?.unwrap_or("").to_string(),
            kind,
            buckets,
            objectives,
        })
    }
}

fn is_prometheus_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn buckets(path: &str, node: &Node) -> Result<Vec<f64>> {
    let Node::Array(items) = node else {
        return Err(expected(path, "an array of numbers", node));
    };
    if items.is_empty() {
        return Err(invalid(format!("{path} must not be empty")));
    }
    let mut out: Vec<f64> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let b = number(&format!("{path}[{i}]"), item)?;
        if out.last().is_some_and(|prev| *prev >= b) {
            return Err(invalid(format!("{path} must be strictly increasing")));
        }
        out.push(b);
    }
    Ok(out)
}

fn objectives(path: &str, node: &Node) -> Result<Vec<(f64, f64)>> {
    let Node::Object(pairs) = node else {
        return Err(expected(
            path,
            "an object of quantile to allowed error, e.g. {\"0.5\": 0.05, \"0.99\": 0.001}",
            node,
        ));
    };
    if pairs.is_empty() {
        return Err(invalid(format!("{path} must not be empty")));
    }
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let at = format!("{path}.{key}");
        let q = match key.trim().parse::<f64>() {
            Ok(q) if (0.0..=1.0).contains(&q) => q,
            _ => {
                return Err(invalid(format!(
                    "{at}: the quantile must be a number from 0 to 1"
                )))
            }
        };
        let e = number(&at, value)?;
        if !(0.0..=1.0).contains(&e) {
            return Err(invalid(format!(
                "{at}: the allowed error must be from 0 to 1, got {e}"
            )));
        }
        if out.iter().any(|(other, _)| *other == q) {
            return Err(invalid(format!(
                "{at}: the quantile {q} is given more than once"
            )));
        }
        out.push((q, e));
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::testutil::*;
    use std::net::IpAddr;

    #[test]
    fn telemetry_defaults() {
        let t = cfg("{telemetry: {}}").telemetry.expect("telemetry");
        assert_eq!(t.port, 9090);
        assert_eq!(t.interfaces, ["eth0:inet", "inet"]);
        assert_eq!(t.address, "10.0.0.2".parse::<IpAddr>().expect("ip"));
        assert!(t.tags.is_empty() && t.metrics.is_empty());
        let t = cfg("{telemetry: {port: 8000, interfaces: ['eth9', 'eth1'], tags: ['x']}}")
            .telemetry
            .expect("telemetry");
        assert_eq!(t.port, 8000);
        assert_eq!(t.address, "10.1.0.2".parse::<IpAddr>().expect("ip"));
        assert_eq!(t.tags, ["x"]);
        // Resolution is always needed: the listener binds there.
        assert!(err1("{telemetry: {interfaces: 'en0'}}")
            .starts_with("telemetry.interfaces: none of the interfaces [\"en0\"] matches"));
        assert_eq!(
            err1("{telemetry: {port: -1}}"),
            "telemetry.port must be from 1 to 65535, got -1"
        );
    }

    #[test]
    fn the_telemetry_service_name_is_reserved() {
        assert_eq!(
            err1("{telemetry: {}, jobs: [{name: 'containerpilot', exec: 'x'}]}"),
            "job[containerpilot]: the name 'containerpilot' belongs to the telemetry service when \
             'telemetry' is configured; rename the job"
        );
        assert_eq!(
            cfg("{jobs: [{name: 'containerpilot', exec: 'x'}]}").jobs[0].name,
            "containerpilot"
        );
    }

    fn metric(body: &str) -> MetricConfig {
        cfg(&format!("{{telemetry: {{metrics: [{{{body}}}]}}}}"))
            .telemetry
            .expect("telemetry")
            .metrics
            .remove(0)
    }

    fn metric_err(body: &str) -> String {
        err1(&format!("{{telemetry: {{metrics: [{{{body}}}]}}}}"))
    }

    #[test]
    fn metric_names_and_types() {
        let m = metric(
            "namespace: 'app', subsystem: 'http', name: 'requests', help: 'count', type: 'counter'",
        );
        assert_eq!(m.name, "app_http_requests");
        assert_eq!(m.help, "count");
        assert_eq!(m.kind, MetricKind::Counter);
        assert_eq!((m.buckets, m.objectives), (None, None));
        // Empty parts are left out.
        assert_eq!(
            metric("namespace: 'app', name: 'up', type: 'gauge'").name,
            "app_up"
        );
        assert_eq!(
            metric("subsystem: 's', name: 'up', type: 'gauge'").name,
            "s_up"
        );
        let m = metric("name: 'up', type: 'gauge'");
        assert_eq!((m.name.as_str(), m.help.as_str()), ("up", ""));
        assert_eq!(
            metric("name: 'h', type: 'histogram'").kind,
            MetricKind::Histogram
        );
        assert_eq!(
            metric("name: 's', type: 'summary'").kind,
            MetricKind::Summary
        );
        assert_eq!(
            metric_err("type: 'gauge'"),
            "telemetry.metrics[0].name is required"
        );
        assert_eq!(
            metric_err("name: 'x'"),
            "telemetry.metrics[0].type is required"
        );
        assert_eq!(
            metric_err("name: 'x', type: 'meter'"),
            "telemetry.metrics[0].type must be one of 'counter', 'gauge', 'histogram' or 'summary', got 'meter'"
        );
        assert_eq!(
            metric_err("name: 'x', type: 'Counter'"),
            "telemetry.metrics[0].type must be one of 'counter', 'gauge', 'histogram' or 'summary', got 'Counter'; did you mean 'counter'?"
        );
        assert_eq!(
            metric_err("namespace: 'my-app', name: 'x', type: 'gauge'"),
            "telemetry.metrics[0]: 'my-app_x' is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
        );
        assert!(metric_err("name: '9lives', type: 'gauge'")
            .contains("not a valid Prometheus metric name"));
        assert_eq!(
            metric_err("name: 'process_open_fds', type: 'gauge'"),
            "telemetry.metrics[0]: 'process_open_fds' is a metric containerpilot exports itself; choose another name"
        );
        assert_eq!(
            err1("{telemetry: {metrics: [{name: 'a_b', type: 'gauge'}, {namespace: 'a', name: 'b', type: 'counter'}]}}"),
            "telemetry.metrics[1]: the metric 'a_b' is defined more than once; metric names must be unique"
        );
    }

    #[test]
    fn histogram_buckets() {
        let m = metric("name: 'h', type: 'histogram', buckets: [0.1, 1, 10]");
        assert_eq!(m.buckets, Some(vec![0.1, 1.0, 10.0]));
        assert_eq!(
            metric_err("name: 'h', type: 'histogram', buckets: [1, 1]"),
            "telemetry.metrics[0].buckets must be strictly increasing"
        );
        assert_eq!(
            metric_err("name: 'h', type: 'histogram', buckets: []"),
            "telemetry.metrics[0].buckets must not be empty"
        );
        assert_eq!(
            metric_err("name: 'h', type: 'histogram', buckets: [1, 'x']"),
            "telemetry.metrics[0].buckets[1] must be a number, got string \"x\""
        );
        assert_eq!(
            metric_err("name: 'h', type: 'histogram', buckets: [1, Infinity]"),
            "telemetry.metrics[0].buckets[1] must be a finite number"
        );
        assert_eq!(
            metric_err("name: 'g', type: 'gauge', buckets: [1]"),
            "telemetry.metrics[0].buckets is only for histograms"
        );
    }

    #[test]
    fn summary_objectives() {
        let m = metric("name: 's', type: 'summary', objectives: {'0.99': 0.001, '0.5': 0.05}");
        assert_eq!(m.objectives, Some(vec![(0.5, 0.05), (0.99, 0.001)]));
        assert_eq!(
            metric_err("name: 's', type: 'summary', objectives: {'1.5': 0.1}"),
            "telemetry.metrics[0].objectives.1.5: the quantile must be a number from 0 to 1"
        );
        assert_eq!(
            metric_err("name: 's', type: 'summary', objectives: {'0.5': 2}"),
            "telemetry.metrics[0].objectives.0.5: the allowed error must be from 0 to 1, got 2"
        );
        assert_eq!(
            metric_err("name: 's', type: 'summary', objectives: {'0.5': 0.1, '0.50': 0.2}"),
            "telemetry.metrics[0].objectives.0.50: the quantile 0.5 is given more than once"
        );
        assert!(
            metric_err("name: 's', type: 'summary', objectives: [[0.5, 0.05]]").starts_with(
                "telemetry.metrics[0].objectives must be an object of quantile to allowed error"
            )
        );
        assert_eq!(
            metric_err("name: 'c', type: 'counter', objectives: {'0.5': 0.05}"),
            "telemetry.metrics[0].objectives is only for summaries"
        );
    }
}
