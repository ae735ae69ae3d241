//! The one integration-test binary: every test here drives the real
//! `containerpilot` binary against real processes, sockets and signals.
//! Each `mod` line says what belongs in that file.

// Shared helpers: unique dirs, the Daemon guard, wait_until, raw HTTP over a unix socket.
mod support;
// SPEC §1: flags, usage errors, -version/-help/-template/-validate, CONTAINERPILOT.
mod cli;
// SPEC §3: restarts, intervals, timeouts, triggers, signals, shutdown, health,
// child environment, job output, reaping (subreaper and PID 1), log reopening.
mod runtime;
// The control plane on the unix socket and the client subcommands (SPEC §1, §3.5, §3.6, §4).
mod control;
// Beyond 3.x (SPEC §1, §4.1): -start/-stop/-restart/-signal/-logs/-status/
// -healthcheck through the real binary; -putenv's path (issue #12).
mod clients;
// A strict Prometheus text-format reader, independent of src/metrics.rs.
mod prom;
// The telemetry endpoint (SPEC §5): /metrics checked three ways, /status, reload.
mod telemetry;
// Every file of the real-world config corpus through `-validate`, and the
// hostile inputs of SPEC §2 (truncated, binary, deeply nested, 10 MB).
mod corpus;
// The static musl binary alone in an empty root, as PID 1 (SPEC §8).
mod scratch;
// SPEC §6 (with §2.3, §3.2, §3.3, §3.6, §5): discovery against the Consul
// agent test double: registration, heartbeats, tokens, agent restarts and
// outages, deregistration, the telemetry service, watches.
mod discovery;
// SPEC §4.1: the per-job API (list, start, stop, restart, signal, logs and follow).
mod jobs;
// Regression tests named after the faults they pin down (issue #12 and later).
mod regression;
// SPEC §6 TLS (issue #13): the agent behind a TLS front with a throw-away CA:
// verification and its failures, mutual TLS, the 3.x variables, keep-alive.
mod tls;
// A job's life beyond 3.x (SPEC §2.3 jobs, §3.2, §3.3, §3.7): shutdownOn,
// restartDelay backoff and what cancels it, when.any/when.all, duplicate
// names and sources naming nothing, and the examples/app.json5 config.
mod lifecycle;
// Health beyond 3.x (SPEC §2.3, §3.7, §4, §5): http/tcp probes against real
// servers, startPeriod, threshold, notify with real senders and its watchdog,
// /v3/health and -healthcheck, the new /status fields.
mod health;
