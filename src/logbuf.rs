//! A job's recent output (SPEC §4.1): the last `logging.keep` lines its
//! process and its health checks wrote, each with its time and stream, for
//! `GET /v3/jobs/NAME/logs`, and the followers of `?follow=1` that get
//! every new line as it is written.
//!
//! The buffer is written by the job's own threads (its runner reads the
//! process's pipes, its checker the check's) and read by the API's, so it
//! sits behind a mutex of its own; it holds output, not supervision state,
//! and the event loop never waits on it. Memory is bounded: at most `keep`
//! lines of at most [`MAX_LINE`] bytes. A follower that does not keep up is
//! dropped rather than ever blocking the writer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crossbeam_channel::{Sender, TrySendError};

/// A kept line is cut to this many bytes (on a character boundary).
pub const MAX_LINE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Output of the job's health check.
    Check,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Check => "check",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub at: SystemTime,
    pub stream: Stream,
    pub text: String,
}

#[derive(Default)]
struct Inner {
    keep: usize,
    lines: VecDeque<Arc<Line>>,
    followers: Vec<Sender<Arc<Line>>>,
    closed: bool,
}

#[derive(Default)]
pub struct LogBuffer {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for LogBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let inner = self.lock();
        write!(
            f,
            "LogBuffer({} of {} lines)",
            inner.lines.len(),
            inner.keep
        )
    }
}

impl LogBuffer {
    pub fn new(keep: usize) -> Arc<LogBuffer> {
        Arc::new(LogBuffer {
            inner: Mutex::new(Inner {
                keep,
                ..Inner::default()
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep `text` (cut to [`MAX_LINE`]) and hand it to every follower.
    pub fn push(&self, stream: Stream, text: &str) {
        let mut inner = self.lock();
        if inner.keep == 0 && inner.followers.is_empty() {
            return;
        }
        let line = Arc::new(Line {
            at: SystemTime::now(),
            stream,
            text: cut(text, MAX_LINE).to_string(),
        });
        // A follower whose queue is full reads too slowly: drop it, which
        // ends its stream, rather than wait for it.
        inner.followers.retain(|f| match f.try_send(line.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        });
        if inner.keep == 0 {
            return;
        }
        if inner.lines.len() == inner.keep {
            inner.lines.pop_front();
        }
        inner.lines.push_back(line);
    }

    /// The last `n` kept lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<Arc<Line>> {
        let inner = self.lock();
        let skip = inner.lines.len().saturating_sub(n);
        inner.lines.iter().skip(skip).cloned().collect()
    }

    /// The last `n` kept lines, and `tx` registered for every line after
    /// them (in one step, so none is missed or doubled). False when the
    /// buffer is closed (its job is gone): nothing will ever come.
    pub fn follow(&self, n: usize, tx: Sender<Arc<Line>>) -> (Vec<Arc<Line>>, bool) {
        let mut inner = self.lock();
        let skip = inner.lines.len().saturating_sub(n);
        let lines = inner.lines.iter().skip(skip).cloned().collect();
        if inner.closed {
            return (lines, false);
        }
        inner.followers.push(tx);
        (lines, true)
    }

    /// The job is gone (removed by a reload, or containerpilot is exiting):
    /// end every follower's stream.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.followers.clear();
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{bounded, TryRecvError};

    fn texts(lines: &[Arc<Line>]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn keeps_the_last_lines_only() {
        let b = LogBuffer::new(3);
        for i in 0..5 {
            b.push(Stream::Stdout, &format!("line {i}"));
        }
        assert_eq!(texts(&b.last(10)), ["line 2", "line 3", "line 4"]);
        assert_eq!(texts(&b.last(1)), ["line 4"]);
        assert_eq!(b.last(0).len(), 0);
    }

    #[test]
    fn keep_zero_keeps_nothing() {
        let b = LogBuffer::new(0);
        b.push(Stream::Stderr, "x");
        assert!(b.last(100).is_empty());
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let b = LogBuffer::new(1);
        let long = "é".repeat(MAX_LINE);
        b.push(Stream::Check, &long);
        let kept = &b.last(1)[0];
        assert!(kept.text.len() <= MAX_LINE && kept.text.len() >= MAX_LINE - 1);
        assert_eq!(kept.stream, Stream::Check);
    }

    #[test]
    fn followers_get_new_lines_and_slow_ones_are_dropped() {
        let b = LogBuffer::new(2);
        b.push(Stream::Stdout, "old");
        let (tx, rx) = bounded(2);
        let (past, open) = b.follow(10, tx);
        assert!(open);
        assert_eq!(texts(&past), ["old"]);
        b.push(Stream::Stdout, "a");
        b.push(Stream::Stdout, "b");
        // The queue is full: the next line drops the follower.
        b.push(Stream::Stdout, "c");
        assert_eq!(rx.recv().unwrap().text, "a");
        assert_eq!(rx.recv().unwrap().text, "b");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        // A follower is fed even with keep = 0.
        let quiet = LogBuffer::new(0);
        let (tx, rx) = bounded(4);
        quiet.follow(10, tx);
        quiet.push(Stream::Stdout, "live");
        assert_eq!(rx.recv().unwrap().text, "live");
    }

    #[test]
    fn closing_ends_every_stream() {
        let b = LogBuffer::new(2);
        let (tx, rx) = bounded(4);
        b.follow(1, tx);
        b.close();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        let (tx, _rx) = bounded(4);
        assert!(!b.follow(1, tx).1);
    }
}
