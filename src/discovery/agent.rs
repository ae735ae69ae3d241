//! The discovery worker: one thread that owns every registration and talks
//! to the Consul agent for the event loop (SPEC §6, §3.3, §3.6).
//!
//! The loop sends [`Command`]s and never waits: the channel is unbounded
//! and every call to Consul happens here. Commands are applied in order to
//! a per-service *want* (register, set the check, deregister); the calls
//! that carry the wants out run between commands. When the agent is
//! unreachable the failed want stays queued and is retried after a capped
//! exponential backoff, while newer commands keep arriving and replace what
//! is still pending for their service (the newest Pass/Fail/Deregister
//! wins). So a Consul outage costs one retry per backoff step, never a
//! stalled loop, and never stops a job.

use std::collections::{BTreeMap, VecDeque};
use std::mem;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::consul::{CheckStatus, Client, ConsulError};
use super::{Registration, Warnings};

/// What the event loop asks of discovery. Service IDs are `Registration::id`.
pub enum Command {
    /// Remember this service. With an `initial_status` it is registered now
    /// with that status; without, at its first `Pass` (SPEC §6). Sending it
    /// again with changed details re-registers at the next `Pass`.
    Register(Registration),
    /// Its check passed: register it if the agent does not have it, else
    /// heartbeat the TTL check (`passing`).
    Pass { id: String },
    /// Its check failed: mark the TTL check `critical` with the check's
    /// output now (beyond 3.x). Registers nothing that is not registered.
    Fail { id: String, output: String },
    /// The job stopped for good: forget the service, deregister it.
    Deregister { id: String },
    /// Deregister every service but remember them, so that each registers
    /// again at its next `Pass` (shutdown, maintenance). `done` is called
    /// once every deregistration succeeded or the time bound ran out.
    DeregisterAll { done: Box<dyn FnOnce() + Send> },
    /// End the thread at once (nothing is deregistered).
    Stop,
}

/// Timing of retries. The defaults suit production; tests shrink them.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// First retry delay after a failure; doubles on each further failure.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// At most one warning per failing endpoint and service this often.
    pub warn_every: Duration,
    /// `DeregisterAll` calls `done` within this, even if Consul is down.
    pub deregister_all_bound: Duration,
    /// Attempts per service within `deregister_all_bound`.
    pub deregister_all_attempts: u32,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            warn_every: Duration::from_secs(60),
            deregister_all_bound: Duration::from_secs(5),
            deregister_all_attempts: 3,
        }
    }
}

/// The handle the event loop holds.
pub struct Agent {
    tx: Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl Agent {
    pub fn start(client: Client) -> Result<Agent, String> {
        Agent::start_with(client, Tuning::default())
    }

    pub fn start_with(client: Client, tuning: Tuning) -> Result<Agent, String> {
        let (tx, rx) = unbounded();
        let worker = Worker {
            client,
            backoff: tuning.backoff_min,
            warnings: Warnings::new(tuning.warn_every),
            tuning,
            entries: BTreeMap::new(),
            queue: VecDeque::new(),
            retry_at: None,
        };
        let thread = thread::Builder::new()
            .name("discovery".into())
            .stack_size(256 * 1024)
            .spawn(move || worker.run(rx))
            .map_err(|e| format!("cannot start the discovery thread: {e}"))?;
        Ok(Agent {
            tx,
            thread: Some(thread),
        })
    }

    /// An agent without a thread: the loop's commands arrive on the
    /// returned channel (for the loop's unit tests).
    #[cfg(test)]
    pub fn detached() -> (Agent, Receiver<Command>) {
        let (tx, rx) = unbounded();
        (Agent { tx, thread: None }, rx)
    }

    /// Queues a command; never blocks.
    pub fn send(&self, cmd: Command) {
        let _ = self.tx.send(cmd);
    }

    /// Ends the thread and waits for it (at most one call's timeout, if a
    /// call is in flight).
    #[cfg(test)]
    pub fn stop(mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Detached: a call in flight must not hold up whoever drops us.
        if self.thread.is_some() {
            let _ = self.tx.send(Command::Stop);
        }
    }
}

/// What is still to be done for one service.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    Idle,
    /// Register with the configured initial status.
    Initial(CheckStatus),
    /// Set the check to `status`. `register`: register first if the agent
    /// lacks the service (always for passing; for critical only when it
    /// stands in for a pending registration it superseded).
    Status {
        status: CheckStatus,
        output: String,
        register: bool,
    },
    /// Deregister.
    Absent,
}

struct Entry {
    /// `None`: forgotten (`Deregister`), kept only until deregistered.
    reg: Option<Registration>,
    /// The agent may hold a registration under this ID.
    in_agent: bool,
    /// ... and it is `reg` as it is now.
    current: bool,
    want: Want,
}

struct Worker {
    client: Client,
    tuning: Tuning,
    entries: BTreeMap<String, Entry>,
    /// IDs whose want is not `Idle`, in the order they are to be tried.
    queue: VecDeque<String>,
    /// Backing off: no call before this.
    retry_at: Option<Instant>,
    backoff: Duration,
    warnings: Warnings,
}

impl Worker {
    fn run(mut self, rx: Receiver<Command>) {
        loop {
            // Take every command that is ready before calling Consul, so a
            // newer command replaces an older want that has not run yet.
            let next = if self.queue.is_empty() {
                match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return,
                }
            } else if let Some(at) = self.retry_at {
                match rx.recv_deadline(at) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match rx.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            };
            match next {
                Some(Command::Stop) => return,
                Some(cmd) => self.apply(cmd),
                None => self.work(),
            }
        }
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Register(reg) => {
                let id = reg.id.clone();
                let initial = reg.initial_status.as_deref().and_then(CheckStatus::parse);
                let e = self.entries.entry(id.clone()).or_insert(Entry {
                    reg: None,
                    in_agent: false,
                    current: false,
                    want: Want::Idle,
                });
                if e.reg.as_ref() != Some(&reg) {
                    e.current = false;
                }
                // Sent again unchanged while registered: nothing to do.
                let registered = e.in_agent && e.current;
                e.reg = Some(reg);
                let want = match (initial, &e.want) {
                    (Some(_), w) if registered => w.clone(),
                    (Some(status), _) => Want::Initial(status),
                    (None, Want::Initial(_)) => Want::Idle,
                    // A pending deregistration of the old service still runs.
                    (None, w) => w.clone(),
                };
                self.set_want(&id, want);
            }
            Command::Pass { id } => {
                if !self.known(&id) {
                    return;
                }
                let want = Want::Status {
                    status: CheckStatus::Passing,
                    output: "ok".into(),
                    register: true,
                };
                self.set_want(&id, want);
            }
            Command::Fail { id, output } => {
                if !self.known(&id) {
                    return;
                }
                let e = &self.entries[&id];
                let register = match &e.want {
                    // Never cancels a pending deregistration.
                    Want::Absent => return,
                    Want::Initial(_) => true,
                    Want::Status { register, .. } => *register,
                    Want::Idle => false,
                };
                let want = if e.in_agent || register {
                    Want::Status {
                        status: CheckStatus::Critical,
                        output,
                        register,
                    }
                } else {
                    Want::Idle
                };
                self.set_want(&id, want);
            }
            Command::Deregister { id } => {
                let Some(e) = self.entries.get_mut(&id) else {
                    return;
                };
                e.reg = None;
                let want = if e.in_agent { Want::Absent } else { Want::Idle };
                self.set_want(&id, want);
                self.forget_if_done(&id);
            }
            Command::DeregisterAll { done } => {
                self.deregister_all();
                done();
            }
            Command::Stop => {}
        }
    }

    /// A service we have a registration for.
    fn known(&self, id: &str) -> bool {
        let known = self.entries.get(id).is_some_and(|e| e.reg.is_some());
        if !known {
            crate::log::debug(&format!(
                "discovery: ignoring a check result for unknown service {id}"
            ));
        }
        known
    }

    fn set_want(&mut self, id: &str, want: Want) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        let was_idle = e.want == Want::Idle;
        let idle = want == Want::Idle;
        e.want = want;
        if was_idle && !idle {
            self.queue.push_back(id.to_string());
        } else if !was_idle && idle {
            self.queue.retain(|q| q != id);
        }
    }

    fn forget_if_done(&mut self, id: &str) {
        if let Some(e) = self.entries.get(id) {
            if e.reg.is_none() && !e.in_agent && e.want == Want::Idle {
                self.entries.remove(id);
            }
        }
    }

    /// Carries out the oldest want.
    fn work(&mut self) {
        let Some(id) = self.queue.pop_front() else {
            return;
        };
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let want = mem::replace(&mut e.want, Want::Idle);
        match attempt(&self.client, &id, e, &want) {
            Ok(()) => {
                for op in ["register", "update", "deregister"] {
                    self.warnings.ok(&format!("{op} {id}"));
                }
                self.backoff = self.tuning.backoff_min;
                self.retry_at = None;
            }
            Err((op, err)) => {
                let what = match op {
                    "register" => "register service",
                    "update" => "update the TTL check of service",
                    _ => "deregister service",
                };
                let transient = err.is_transient();
                let retry = if transient { "; will retry" } else { "" };
                self.warnings.warn(
                    &format!("{op} {id}"),
                    &format!("discovery: cannot {what} {id}: {err}{retry}"),
                );
                if transient {
                    // To the back: one service's trouble must not hold up
                    // the others' calls once the agent answers again.
                    e.want = want;
                    self.queue.push_back(id.clone());
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(self.tuning.backoff_max);
                }
            }
        }
        self.forget_if_done(&id);
    }

    /// Bounded: tries each registered service a few times within the bound,
    /// leaves what still failed to be retried later, and returns.
    fn deregister_all(&mut self) {
        let deadline = Instant::now() + self.tuning.deregister_all_bound;
        for e in self.entries.values_mut() {
            e.want = Want::Idle;
        }
        self.queue.clear();
        let mut todo: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.in_agent)
            .map(|(id, _)| id.clone())
            .collect();
        let mut last_error = BTreeMap::new();
        let mut pause = Duration::from_millis(50);
        for attempt in 0..self.tuning.deregister_all_attempts.max(1) {
            if attempt > 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                thread::sleep(pause.min(left));
                pause *= 2;
            }
            let mut failed = Vec::new();
            for id in todo {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    failed.push(id);
                    continue;
                }
                match self
                    .client
                    .deregister_within(&id, self.client.timeout().min(left))
                {
                    Ok(()) => {
                        crate::log::debug(&format!("discovery: deregistered service {id}"));
                        let e = self.entries.get_mut(&id).expect("todo holds known ids");
                        e.in_agent = false;
                        e.current = false;
                    }
                    Err(err) if err.is_transient() => {
                        last_error.insert(id.clone(), err);
                        failed.push(id);
                    }
                    Err(err) => {
                        self.warnings.warn(
                            &format!("deregister {id}"),
                            &format!("discovery: cannot deregister service {id}: {err}"),
                        );
                    }
                }
            }
            todo = failed;
            if todo.is_empty() {
                break;
            }
        }
        for id in &todo {
            let why = last_error
                .get(id)
                .map_or("timed out".to_string(), |e| e.to_string());
            self.warnings.warn(
                &format!("deregister {id}"),
                &format!("discovery: cannot deregister service {id}: {why}; will retry"),
            );
            self.set_want(id, Want::Absent);
        }
        if !todo.is_empty() {
            self.retry_at = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(self.tuning.backoff_max);
        }
        let ids: Vec<String> = self.entries.keys().cloned().collect();
        for id in ids {
            self.forget_if_done(&id);
        }
    }
}

/// One want against the agent. Updates what we know of the agent's state
/// as calls succeed. Errors name the operation that failed.
fn attempt(
    client: &Client,
    id: &str,
    e: &mut Entry,
    want: &Want,
) -> Result<(), (&'static str, ConsulError)> {
    match want {
        Want::Idle => Ok(()),
        Want::Absent => {
            client.deregister(id).map_err(|err| ("deregister", err))?;
            crate::log::debug(&format!("discovery: deregistered service {id}"));
            e.in_agent = false;
            e.current = false;
            Ok(())
        }
        Want::Initial(status) => {
            let Some(reg) = e.reg.clone() else {
                return Ok(());
            };
            register(client, e, &reg, *status)
        }
        Want::Status {
            status,
            output,
            register: may_register,
        } => {
            let Some(reg) = e.reg.clone() else {
                return Ok(());
            };
            let passing = *status == CheckStatus::Passing;
            if passing && !(e.in_agent && e.current) {
                return register(client, e, &reg, *status);
            }
            if e.in_agent {
                match client.update_check(id, *status, output) {
                    Ok(()) => return Ok(()),
                    Err(ConsulError::Unknown { .. }) => {
                        e.in_agent = false;
                        e.current = false;
                        // A failing service the agent dropped (restarted, or
                        // reaped after deregisterCriticalServiceAfter) comes
                        // back at its next pass, not now.
                        if !(passing || *may_register) {
                            return Ok(());
                        }
                        crate::log::info(&format!(
                            "discovery: the Consul agent lost service {id}; registering it again"
                        ));
                    }
                    Err(err) => return Err(("update", err)),
                }
            } else if !*may_register {
                return Ok(());
            }
            register(client, e, &reg, *status)?;
            client
                .update_check(id, *status, output)
                .map_err(|err| ("update", err))
        }
    }
}

fn register(
    client: &Client,
    e: &mut Entry,
    reg: &Registration,
    status: CheckStatus,
) -> Result<(), (&'static str, ConsulError)> {
    match client.register(reg, status) {
        Ok(()) => {
            crate::log::info(&format!(
                "discovery: service registered: {} ({})",
                reg.name, reg.id
            ));
            e.in_agent = true;
            e.current = true;
            Ok(())
        }
        Err(err) => {
            if err.maybe_applied() {
                e.in_agent = true;
                e.current = false;
            }
            Err(("register", err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::consul::tests::client;
    use crate::discovery::double::{FakeConsul, State};
    use serde_json::json;

    /// Generous: a loaded 2-core machine must still make it.
    const T: Duration = Duration::from_secs(10);

    fn fast() -> Tuning {
        Tuning {
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(160),
            warn_every: Duration::from_secs(60),
            deregister_all_bound: Duration::from_millis(500),
            deregister_all_attempts: 3,
        }
    }

    fn agent(fake: &FakeConsul) -> Agent {
        Agent::start_with(client(fake, Some("tok")), fast()).unwrap()
    }

    fn reg(name: &str, initial: Option<&str>) -> Registration {
        Registration {
            id: format!("{name}-host"),
            name: name.into(),
            address: Some("10.0.0.5".into()),
            port: 8080,
            tags: vec!["t".into()],
            ttl: Duration::from_secs(10),
            initial_status: initial.map(String::from),
            enable_tag_override: false,
            deregister_critical_service_after: None,
        }
    }

    fn pass(id: &str) -> Command {
        Command::Pass { id: id.into() }
    }

    fn fail(id: &str, output: &str) -> Command {
        Command::Fail {
            id: id.into(),
            output: output.into(),
        }
    }

    fn status(s: &State, check: &str) -> Option<(String, String)> {
        s.checks
            .get(check)
            .map(|c| (c.status.clone(), c.output.clone()))
    }

    fn has(s: &State, check: &str, want: &str, output: &str) -> bool {
        status(s, check) == Some((want.to_string(), output.to_string()))
    }

    /// Answered requests as `METHOD path` lines.
    fn lines(fake: &FakeConsul) -> Vec<String> {
        fake.requests()
            .iter()
            .filter(|r| r.status.is_some())
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Answered requests about service `web-host` (path or registered ID).
    fn web_lines(fake: &FakeConsul) -> Vec<String> {
        fake.requests()
            .iter()
            .filter(|r| {
                r.status.is_some() && (r.path.contains("web-host") || r.json()["ID"] == "web-host")
            })
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Blocks until the worker has handled every command sent before.
    fn barrier(a: &Agent, fake: &FakeConsul) {
        // A throwaway service with an initial status registers at once, in order.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "barrier{}",
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let id = format!("{name}-host");
        a.send(Command::Register(reg(&name, Some("passing"))));
        fake.expect(T, "the barrier registration", |s| {
            s.services.contains_key(&id)
        });
        a.send(Command::Deregister { id: id.clone() });
        fake.expect(T, "the barrier deregistration", |s| {
            !s.services.contains_key(&id)
        });
    }

    const REGISTER: &str = "PUT /v1/agent/service/register";
    const UPDATE: &str = "PUT /v1/agent/check/update/service:web-host";
    const DEREGISTER: &str = "PUT /v1/agent/service/deregister/web-host";

    #[test]
    fn registers_at_first_pass_then_heartbeats() {
        let fake = FakeConsul::start();
        let a = agent(&fake);
        a.send(Command::Register(reg("web", None)));
        a.send(fail("web-host", "not yet"));
        barrier(&a, &fake);
        assert!(!fake.services().contains_key("web-host"));
        assert_eq!(web_lines(&fake), Vec::<String>::new());
        assert_eq!(
            fake.state().count("PUT", "/v1/agent/service/register"),
            1,
            "only the barrier registered"
        );

        fake.clear_requests();
        a.send(pass("web-host"));
        fake.expect(T, "registration", |s| {
            has(s, "service:web-host", "passing", "")
        });
        a.send(pass("web-host"));
        fake.expect(T, "heartbeat", |s| {
            s.count("PUT", "/v1/agent/check/update/service:web-host") == 1
        });
        assert_eq!(lines(&fake), [REGISTER, UPDATE]);
        let reqs = fake.requests();
        assert_eq!(
            reqs[0].json(),
            json!({"ID": "web-host", "Name": "web", "Tags": ["t"], "Port": 8080, "Address": "10.0.0.5",
                   "EnableTagOverride": false,
                   "Check": {"TTL": "10s", "Status": "passing", "Notes": "TTL for web set by containerpilot"}})
        );
        assert_eq!(reqs[1].json(), json!({"Status": "passing", "Output": "ok"}));
        assert!(reqs
            .iter()
            .all(|r| r.header("X-Consul-Token") == Some("tok")));
        a.stop();
    }

    #[test]
    fn initial_status_registers_at_once() {
        let fake = FakeConsul::start();
        let a = agent(&fake);
        a.send(Command::Register(reg("web", Some("warning"))));
        fake.expect(T, "registration with the initial status", |s| {
            has(s, "service:web-host", "warning", "")
        });
        assert_eq!(lines(&fake), [REGISTER]);
        assert_eq!(fake.requests()[0].json()["Check"]["Status"], "warning");
        a.send(pass("web-host"));
        fake.expect(T, "heartbeat", |s| {
            has(s, "service:web-host", "passing", "ok")
        });
        assert_eq!(lines(&fake), [REGISTER, UPDATE]);
    }

    #[test]
    fn register_sent_again_unchanged_is_a_no_op() {
        let fake = FakeConsul::start();
        let a = agent(&fake);
        a.send(Command::Register(reg("web", Some("critical"))));
        fake.expect(T, "registration", |s| {
            has(s, "service:web-host", "critical", "")
        });
        a.send(pass("web-host"));
        fake.expect(T, "passing", |s| {
            has(s, "service:web-host", "passing", "ok")
        });
        a.send(Command::Register(reg("web", Some("critical"))));
        barrier(&a, &fake);
        let st = fake.state();
        assert_eq!(status(&st, "service:web-host").unwrap().0, "passing");
        assert_eq!(web_lines(&fake), [REGISTER, UPDATE]);
        // Changed details: registered again, with the initial status.
        let mut changed = reg("web", Some("critical"));
        changed.port = 9000;
        a.send(Command::Register(changed));
        fake.expect(T, "re-registration", |s| {
            s.services.get("web-host").is_some_and(|x| x.port == 9000)
        });
        assert_eq!(
            status(&fake.state(), "service:web-host").unwrap().0,
            "critical"
        );
    }

    #[test]
    fn failing_check_marks_critical_with_its_output() {
        let fake = FakeConsul::start();
        let a = agent(&fake);
        a.send(Command::Register(reg("web", None)));
        a.send(pass("web-host"));
        a.send(fail("web-host", "connection refused\nexit 7"));
        fake.expect(T, "critical", |s| {
            has(
                s,
                "service:web-host",
                "critical",
                "connection refused\nexit 7",
            )
        });
        let last = fake.requests().pop().unwrap();
        assert_eq!(
            last.json(),
            json!({"Status": "critical", "Output": "connection refused\nexit 7"})
        );
        a.send(pass("web-host"));
        fake.expect(T, "passing again", |s| {
            has(s, "service:web-host", "passing", "ok")
        });
    }

    fn reregisters_after_restart(old_agent: bool) {
        let fake = FakeConsul::start();
        fake.old_agent_mode(old_agent);
        let a = agent(&fake);
        a.send(Command::Register(reg("web", None)));
        a.send(pass("web-host"));
        fake.expect(T, "registration", |s| s.services.contains_key("web-host"));
        fake.restart();
        fake.clear_requests();
        a.send(pass("web-host"));
        fake.expect(T, "re-registration", |s| {
            has(s, "service:web-host", "passing", "ok")
        });
        assert_eq!(lines(&fake), [UPDATE, REGISTER, UPDATE]);
        let first = &fake.requests()[0];
        assert_eq!(first.status, Some(if old_agent { 500 } else { 404 }));
    }

    #[test]
    fn agent_restart_reregisters_at_next_heartbeat() {
        reregisters_after_restart(false);
    }

    #[test]
    fn old_agent_restart_reregisters_at_next_heartbeat() {
        reregisters_after_restart(true);
    }

    #[test]
    fn lost_failing_service_comes_back_at_its_next_pass() {
        let fake = FakeConsul::start();
        let a = agent(&fake);
        a.send(Command::Register(reg("web", None)));
        a.send(pass("web-host"));
        fake.expect(T, "registration", |s| s.services.contains_key("web-host"));
        fake.restart();
        a.send(fail("web-host", "down"));
        fake.expect(T, "the failed update", |s| {
            s.requests.last().is_some_and(|r| r.status == Some(404))
        });
        barrier(&a, &fake);
        assert!(!fake.services().contains_key("web-host"));
        a.send(pass("web-host"));
        fake.expect(T, "registration at the pass", |s| {
            has(s, "service:web-host", "passing", "")
        });
    }

    #[test]
    fn deregister_forgets_the_service() {
        let fake = FakeConsul::start();
        let a = agent(&fake);
        a.send(Command::Register(reg("web", None)));
        a.send(pass("web-host"));
        fake.expect(T, "registration", |s| s.services.contains_key("web-host"));
        a.send(Command::Deregister {
            id: "web-host".into(),
        });
        fake.expect(T, "deregistration", |s| {
            s.count("PUT", "/v1/agent/service/deregister/web-host") == 1
        });
        assert!(!fake.services().contains_key("web-host"));
        // Forgotten: a late pass registers nothing.
        a.send(pass("web-host"));
        barrier(&a, &fake);
        assert_eq!(web_lines(&fake), [REGISTER, DEREGISTER]);
        assert_eq!(fake.state().services.len(), 0);
    }

    #[test]
    fn commands_that_cancel_out_cost_no_call() {
        let fake = FakeConsul::start();
        fake.set_hang(true);
        let a = Agent::start_with(
            client(&fake, None).with_timeout(Duration::from_secs(1)),
            fast(),
        )
        .unwrap();
        // The worker is stuck in this call while the next commands queue up.
        a.send(Command::Register(reg("api", Some("passing"))));
        fake.expect(T, "the hanging call", |s| s.requests.len() == 1);
        a.send(Command::Register(reg("web", None)));
        a.send(pass("web-host"));
        a.send(Command::Deregister {
            id: "web-host".into(),
        });
        fake.set_hang(false);
        barrier(&a, &fake);
        assert_eq!(web_lines(&fake), Vec::<String>::new());
    }

    #[test]
    fn deregister_all_keeps_registrations_for_the_next_pass() {
        let fake = FakeConsul::start();
        let a = agent(&fake);
        for name in ["web", "api"] {
            a.send(Command::Register(reg(name, None)));
            a.send(pass(&format!("{name}-host")));
        }
        fake.expect(T, "both registered", |s| s.services.len() == 2);
        let (tx, rx) = crossbeam_channel::bounded(1);
        a.send(Command::DeregisterAll {
            done: Box::new(move || {
                let _ = tx.send(());
            }),
        });
        rx.recv_timeout(T).expect("DeregisterAll calls done");
        assert!(fake.services().is_empty());
        assert_eq!(
            fake.state()
                .count("PUT", "/v1/agent/service/deregister/web-host"),
            1
        );
        // Maintenance over: registered again at the next pass.
        a.send(pass("web-host"));
        fake.expect(T, "re-registration", |s| {
            has(s, "service:web-host", "passing", "")
        });
    }

    #[test]
    fn consul_down_never_blocks_and_is_retried_with_backoff() {
        let fake = FakeConsul::start();
        fake.set_down(true);
        let a = agent(&fake);
        let start = Instant::now();
        for _ in 0..100 {
            a.send(Command::Register(reg("web", Some("passing"))));
            a.send(pass("web-host"));
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "sending must not wait for Consul"
        );
        fake.expect(T, "five attempts", |s| s.requests.len() >= 5);
        fake.set_down(false);
        fake.expect(T, "registration once up", |s| {
            has(s, "service:web-host", "passing", "")
        });
        let reqs = fake.requests();
        let dropped: Vec<_> = reqs.iter().take_while(|r| r.status.is_none()).collect();
        assert!(dropped.len() >= 5);
        // Each wait at least the backoff: 20, 40, 80, 160, 160 ms.
        for (i, w) in dropped.windows(2).enumerate() {
            let floor = Duration::from_millis(20 << i.min(3));
            assert!(
                w[1].at - w[0].at >= floor,
                "retry {i} after {:?} < {floor:?}",
                w[1].at - w[0].at
            );
        }
        // Coalesced: once up, one registration, not 200 calls.
        assert!(
            reqs.iter().filter(|r| r.status.is_some()).count() <= 2,
            "{:?}",
            lines(&fake)
        );
    }

    #[test]
    fn a_newer_command_supersedes_a_pending_one() {
        let fake = FakeConsul::start();
        fake.set_down(true);
        let a = agent(&fake);
        a.send(Command::Register(reg("web", Some("passing"))));
        fake.expect(T, "a failed attempt", |s| !s.requests.is_empty());
        a.send(Command::Deregister {
            id: "web-host".into(),
        });
        fake.set_down(false);
        // The dropped registration may have reached the agent, so it is
        // deregistered; it is never registered again.
        fake.expect(T, "deregistration", |s| {
            s.requests.iter().any(|r| r.status.is_some())
        });
        barrier(&a, &fake);
        assert_eq!(web_lines(&fake), [DEREGISTER]);
        assert!(!fake.services().contains_key("web-host"));
    }

    #[test]
    fn deregister_all_is_bounded_when_consul_hangs() {
        let fake = FakeConsul::start();
        // Default per-call timeout (5 s): the bound must cut it short.
        let a = Agent::start_with(client(&fake, None), fast()).unwrap();
        a.send(Command::Register(reg("web", Some("passing"))));
        fake.expect(T, "registration", |s| s.services.contains_key("web-host"));
        fake.set_hang(true);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let start = Instant::now();
        a.send(Command::DeregisterAll {
            done: Box::new(move || {
                let _ = tx.send(());
            }),
        });
        rx.recv_timeout(T)
            .expect("done is called even though Consul hangs");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "took {took:?}"
        );
        // Left to retry: deregistered once the agent answers again.
        fake.set_hang(false);
        fake.expect(T, "deregistration later", |s| {
            !s.services.contains_key("web-host")
        });
    }

    #[test]
    fn deregister_all_is_quick_when_consul_is_gone() {
        let fake = FakeConsul::start();
        let a = agent(&fake);
        a.send(Command::Register(reg("web", Some("passing"))));
        fake.expect(T, "registration", |s| s.services.contains_key("web-host"));
        drop(fake);
        let (tx, rx) = crossbeam_channel::bounded(1);
        a.send(Command::DeregisterAll {
            done: Box::new(move || {
                let _ = tx.send(());
            }),
        });
        rx.recv_timeout(T)
            .expect("done is called although nothing listens");
        a.stop();
    }
}
