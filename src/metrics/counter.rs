//! [`RequestCounter`]: the labelled counter ContainerPilot keeps about its
//! control socket, `containerpilot_control_http_requests{code,path}`. (The
//! user's counters and gauges are a single number each, kept by the
//! `Registry`.)

use std::fmt::Write as _;

use super::text::{header, sample};

/// `containerpilot_control_http_requests{code,path}`. The caller passes only
/// known paths, so the label set stays bounded.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    /// Sorted by (code, path): the order samples are rendered in.
    counts: Vec<(u16, String, u64)>,
}

impl RequestCounter {
    #[cfg(test)]
    pub fn new() -> RequestCounter {
        RequestCounter::default()
    }

    pub fn inc(&mut self, code: u16, path: &str) {
        match self
            .counts
            .binary_search_by(|(c, p, _)| (*c, p.as_str()).cmp(&(code, path)))
        {
            Ok(i) => self.counts[i].2 += 1,
            Err(i) => self.counts.insert(i, (code, path.to_string(), 1)),
        }
    }

    #[cfg(test)]
    pub fn get(&self, code: u16, path: &str) -> u64 {
        self.counts
            .iter()
            .find(|(c, p, _)| *c == code && p == path)
            .map_or(0, |e| e.2)
    }

    /// Help text as ContainerPilot 3's. Nothing when no request was counted
    /// (client_golang omits a vector with no children).
    pub fn render(&self, out: &mut String) {
        const NAME: &str = "containerpilot_control_http_requests";
        if self.counts.is_empty() {
            return;
        }
        header(
            out,
            NAME,
            "count of requests to control socket, partitioned by path and HTTP code",
            "counter",
        );
        let mut code = String::new();
        for (c, p, n) in &self.counts {
            code.clear();
            let _ = write!(code, "{c}");
            sample(out, NAME, "", &[("code", &code), ("path", p)], *n as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_counter() {
        let mut c = RequestCounter::new();
        let mut s = String::new();
        c.render(&mut s);
        assert_eq!(s, "");
        c.inc(200, "/v3/ping");
        c.inc(400, "/v3/metric");
        c.inc(200, "/v3/ping");
        c.inc(200, "/v3/env");
        c.render(&mut s);
        assert_eq!(
            s,
            "# HELP containerpilot_control_http_requests count of requests to control socket, partitioned by path and HTTP code\n\
             # TYPE containerpilot_control_http_requests counter\n\
             containerpilot_control_http_requests{code=\"200\",path=\"/v3/env\"} 1\n\
             containerpilot_control_http_requests{code=\"200\",path=\"/v3/ping\"} 2\n\
             containerpilot_control_http_requests{code=\"400\",path=\"/v3/metric\"} 1\n"
        );
        assert_eq!(c.get(200, "/v3/ping"), 2);
    }
}
