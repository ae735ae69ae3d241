//! Watches (SPEC §6): the poller thread that runs a watch's health query
//! when the event loop asks (the loop holds every watch's interval
//! deadline), and the pure rule that turns two successive polls into
//! events.

use std::collections::{BTreeSet, VecDeque};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::consul::Client;
use super::{Instance, Warnings};
use crate::config::WatchConfig;
use crate::event::EventCode;

/// The events a poll publishes (source `watch.NAME`), given the previous
/// successful poll (`None`: this is the first) and this one. A failed poll
/// publishes nothing and is not passed here.
///
/// Any difference: `changed`, then `healthy` if instances remain or
/// `unhealthy` if none do (as 3.x). The first poll: `changed` + `healthy`
/// when it finds instances, `unhealthy` alone when it finds none.
pub fn watch_events(prev: Option<&BTreeSet<Instance>>, now: &BTreeSet<Instance>) -> Vec<EventCode> {
    match prev {
        Some(prev) if prev == now => vec![],
        None if now.is_empty() => vec![EventCode::Unhealthy],
        _ if now.is_empty() => vec![EventCode::Changed, EventCode::Unhealthy],
        _ => vec![EventCode::Changed, EventCode::Healthy],
    }
}

/// What the loop keeps per watch: the last successful poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchState {
    last: Option<BTreeSet<Instance>>,
    /// The next successful poll counts as the first (after a reload).
    rearmed: bool,
}

impl WatchState {
    /// Applies a poll result (`None`: failed, changes nothing) and returns
    /// the events to publish.
    pub fn update(&mut self, polled: Option<BTreeSet<Instance>>) -> Vec<EventCode> {
        let Some(now) = polled else {
            return vec![];
        };
        let prev = if self.rearmed {
            None
        } else {
            self.last.as_ref()
        };
        let events = watch_events(prev, &now);
        self.last = Some(now);
        self.rearmed = false;
        events
    }

    /// Make the next successful poll publish what a first poll publishes,
    /// while `/status` still shows the last one (SPEC §3.5: after a reload,
    /// `changed` hooks run again, as 3.x rebuilt its discovery state).
    pub fn rearm(&mut self) {
        self.rearmed = true;
    }

    /// Healthy instances at the last successful poll (`None` before one).
    pub fn instances(&self) -> Option<&BTreeSet<Instance>> {
        self.last.as_ref()
    }

    /// For `/status`: `unknown` before the first successful poll.
    pub fn status(&self) -> &'static str {
        match &self.last {
            None => "unknown",
            Some(s) if s.is_empty() => "unhealthy",
            Some(_) => "healthy",
        }
    }
}

/// A poll's outcome, reported through the poller's callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchResult {
    /// The key the loop gave `poll` (its own id for the watch).
    pub key: u64,
    pub name: String,
    /// `None`: the query failed (already logged, rate-limited).
    pub instances: Option<BTreeSet<Instance>>,
}

/// One health query the loop asked for.
pub(crate) struct Query {
    pub(crate) key: u64,
    pub(crate) name: String,
    tag: Option<String>,
    dc: Option<String>,
}

pub(crate) enum PollCmd {
    Poll(Query),
    Stop,
}

/// A failing watch warns at most this often (as the agent's `Tuning::warn_every`).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// One thread for every watch: queries run one at a time, in the order asked.
pub struct Poller {
    tx: Sender<PollCmd>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    /// `report` is called on the poller thread for every poll (typically
    /// it sends a message to the event loop).
    pub fn start(
        client: Client,
        report: Box<dyn Fn(WatchResult) + Send>,
    ) -> Result<Poller, String> {
        let (tx, rx) = unbounded();
        let thread = thread::Builder::new()
            .name("watches".into())
            .stack_size(256 * 1024)
            .spawn(move || run(client, rx, report, Warnings::new(WARN_EVERY)))
            .map_err(|e| format!("cannot start the watch thread: {e}"))?;
        Ok(Poller {
            tx,
            thread: Some(thread),
        })
    }

    /// A poller without a thread: what the loop asks arrives on the
    /// returned channel (for the loop's unit tests).
    #[cfg(test)]
    pub(crate) fn detached() -> (Poller, Receiver<PollCmd>) {
        let (tx, rx) = unbounded();
        (Poller { tx, thread: None }, rx)
    }

    /// Queues a health query for `watch`; never blocks. A poll of the same
    /// key still waiting to run is replaced, not repeated, so a slow agent
    /// never builds a backlog.
    pub fn poll(&self, key: u64, watch: &WatchConfig) {
        let _ = self.tx.send(PollCmd::Poll(Query {
            key,
            name: watch.name.clone(),
            tag: watch.tag.clone(),
            dc: watch.dc.clone(),
        }));
    }

    /// Ends the thread and waits for it (at most one query's timeout).
    #[cfg(test)]
    pub fn stop(mut self) {
        let _ = self.tx.send(PollCmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.tx.send(PollCmd::Stop);
        }
    }
}

fn run(
    client: Client,
    rx: Receiver<PollCmd>,
    report: Box<dyn Fn(WatchResult) + Send>,
    mut warnings: Warnings,
) {
    let mut pending: VecDeque<Query> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match rx.recv() {
                Ok(PollCmd::Poll(q)) => pending.push_back(q),
                Ok(PollCmd::Stop) | Err(_) => return,
            }
        }
        // Everything asked meanwhile, one query per key.
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                PollCmd::Poll(q) => match pending.iter_mut().find(|p| p.key == q.key) {
                    Some(p) => *p = q,
                    None => pending.push_back(q),
                },
                PollCmd::Stop => return,
            }
        }
        let Some(q) = pending.pop_front() else {
            continue;
        };
        let key = format!("watch {}", q.name);
        let instances = match client.health_service(&q.name, q.tag.as_deref(), q.dc.as_deref()) {
            Ok(set) => {
                warnings.ok(&key);
                Some(set)
            }
            Err(e) => {
                warnings.warn(
                    &key,
                    &format!(
                        "discovery: cannot query the health of service {}: {e}",
                        q.name
                    ),
                );
                None
            }
        };
        report(WatchResult {
            key: q.key,
            name: q.name,
            instances,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::consul::tests::client;
    use crate::discovery::double::FakeConsul;
    use EventCode::{Changed, Healthy, Unhealthy};

    fn set(v: &[(&str, u16)]) -> BTreeSet<Instance> {
        v.iter().map(|(a, p)| (a.to_string(), *p)).collect()
    }

    #[test]
    fn first_poll() {
        assert_eq!(watch_events(None, &set(&[])), [Unhealthy]);
        assert_eq!(
            watch_events(None, &set(&[("10.0.0.1", 80)])),
            [Changed, Healthy]
        );
    }

    #[test]
    fn later_polls() {
        let a = set(&[("10.0.0.1", 80)]);
        let ab = set(&[("10.0.0.1", 80), ("10.0.0.2", 80)]);
        let none = set(&[]);
        assert_eq!(watch_events(Some(&a), &a), []);
        assert_eq!(watch_events(Some(&none), &none), []);
        assert_eq!(watch_events(Some(&a), &ab), [Changed, Healthy]);
        assert_eq!(watch_events(Some(&ab), &a), [Changed, Healthy]);
        assert_eq!(watch_events(Some(&a), &none), [Changed, Unhealthy]);
        assert_eq!(watch_events(Some(&none), &a), [Changed, Healthy]);
        // Same address, other port; same port, other address.
        assert_eq!(
            watch_events(Some(&a), &set(&[("10.0.0.1", 81)])),
            [Changed, Healthy]
        );
        assert_eq!(
            watch_events(Some(&a), &set(&[("10.0.0.3", 80)])),
            [Changed, Healthy]
        );
    }

    #[test]
    fn state_ignores_failed_polls() {
        let mut w = WatchState::default();
        assert_eq!((w.status(), w.instances()), ("unknown", None));
        assert_eq!(w.update(None), []);
        assert_eq!(w.update(Some(set(&[("a", 1)]))), [Changed, Healthy]);
        assert_eq!(w.update(None), []);
        assert_eq!(w.update(Some(set(&[("a", 1)]))), []);
        assert_eq!(
            (w.status(), w.instances().map(BTreeSet::len)),
            ("healthy", Some(1))
        );
        assert_eq!(w.update(Some(set(&[]))), [Changed, Unhealthy]);
        assert_eq!(w.status(), "unhealthy");
    }

    fn watch(name: &str, tag: Option<&str>, dc: Option<&str>) -> WatchConfig {
        WatchConfig {
            name: name.into(),
            interval: Duration::from_secs(1),
            tag: tag.map(String::from),
            dc: dc.map(String::from),
        }
    }

    fn poller(fake: &FakeConsul, timeout: Duration) -> (Poller, Receiver<WatchResult>) {
        let client = client(fake, None).with_timeout(timeout);
        let (tx, rx) = unbounded();
        let p = Poller::start(client, Box::new(move |r| drop(tx.send(r)))).unwrap();
        (p, rx)
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn poller_reports_instances_and_failures() {
        let fake = FakeConsul::start();
        fake.set_instances("db", "dc1", vec![("10.0.0.1", 5432, vec!["primary"])]);
        let (p, rx) = poller(&fake, T);
        p.poll(7, &watch("db", Some("primary"), None));
        let r = rx.recv_timeout(T).unwrap();
        assert_eq!(
            r,
            WatchResult {
                key: 7,
                name: "db".into(),
                instances: Some(set(&[("10.0.0.1", 5432)]))
            }
        );
        fake.set_instances("db", "east", vec![]);
        p.poll(8, &watch("db", None, Some("east")));
        assert_eq!(rx.recv_timeout(T).unwrap().instances, Some(set(&[])));
        fake.set_down(true);
        p.poll(7, &watch("db", None, None));
        assert_eq!(
            rx.recv_timeout(T).unwrap(),
            WatchResult {
                key: 7,
                name: "db".into(),
                instances: None
            }
        );
        let q: Vec<_> = fake.requests().iter().map(|r| r.query.clone()).collect();
        // The failed poll went twice: once on the kept connection, which
        // the agent closed without an answer, and once on a new one.
        assert_eq!(
            q,
            [
                "passing=1&tag=primary",
                "passing=1&dc=east",
                "passing=1",
                "passing=1"
            ]
        );
        p.stop();
    }

    #[test]
    fn queued_polls_of_one_watch_collapse() {
        let fake = FakeConsul::start();
        fake.set_hang(true);
        let (p, rx) = poller(&fake, Duration::from_secs(1));
        p.poll(1, &watch("a", None, None));
        // The first query is now in flight (hanging); these queue behind it.
        assert!(fake.wait_for(T, |s| s.requests.len() == 1));
        for _ in 0..5 {
            p.poll(1, &watch("a", None, None));
            p.poll(2, &watch("b", None, None));
        }
        fake.set_hang(false);
        let mut got = vec![];
        for _ in 0..3 {
            let r = rx.recv_timeout(T).unwrap();
            got.push((r.key, r.instances.is_some()));
        }
        // The hung query timed out; then one query for each key.
        assert_eq!(got, [(1, false), (1, true), (2, true)]);
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        assert_eq!(fake.requests().len(), 3);
    }
}
