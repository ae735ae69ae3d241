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
// Every file of the real-world config corpus through `-validate`, and the
// hostile inputs of SPEC §2 (truncated, binary, deeply nested, 10 MB).
mod corpus;
