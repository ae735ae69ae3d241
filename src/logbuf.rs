//! A job's recent output (SPEC §4.1): the last `logging.keep` lines its
//! process and its health checks wrote, each with its time and stream, for
//! `GET /v3/jobs/NAME/logs`, and the followers of `?follow=1` that get
//! every new line as it is written.
//!
//! The buffer is written by the job's own threads (its runner reads the
//! process's pipes, its checker the check's) and read by the API's, so it
//! sits behind a mutex of its own; it holds output, not supervision state,
//! and the event loop never waits on it. Memory is bounded: at most `keep`
//! lines of at most [`MAX_LINE`] bytes, kept back to back in one ring of
//! bytes (no allocation per line, no allocator slack per line) plus 16
//! bytes a line for its time, stream and length. A follower that does not
//! keep up is dropped rather than ever blocking the writer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, TrySendError};

/// A kept line is cut to this many bytes (on a character boundary).
pub const MAX_LINE: usize = 1024;

/// The ring of text grows by at least this much at a time: a few
/// reallocations while a job's output fills it, then none.
const GROW: usize = 4096;

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

/// A kept line but its text.
#[derive(Clone, Copy)]
struct Meta {
    /// Microseconds since the epoch: what the logs show of a time.
    micros: u64,
    /// Of the text; at most `MAX_LINE`.
    len: u16,
    stream: Stream,
}

#[derive(Default)]
struct Inner {
    keep: usize,
    /// The kept lines, oldest first.
    meta: VecDeque<Meta>,
    /// Their texts, back to back in the same order.
    text: VecDeque<u8>,
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
        write!(f, "LogBuffer({} of {} lines)", inner.meta.len(), inner.keep)
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

    /// Keep `text` (cut to [`MAX_LINE`]), written at `at`, and hand it to
    /// every follower.
    pub fn push(&self, at: SystemTime, stream: Stream, text: &str) {
        let mut inner = self.lock();
        if inner.keep == 0 && inner.followers.is_empty() {
            return;
        }
        let text = cut(text, MAX_LINE);
        let micros = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        if !inner.followers.is_empty() {
            let line = Arc::new(Line {
                at: time_of(micros),
                stream,
                text: text.to_string(),
            });
            // A follower whose queue is full reads too slowly: drop it,
            // which ends its stream, rather than wait for it.
            inner.followers.retain(|f| match f.try_send(line.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            });
        }
        if inner.keep > 0 {
            inner.keep_line(
                Meta {
                    micros,
                    len: text.len() as u16, // at most MAX_LINE
                    stream,
                },
                text.as_bytes(),
            );
        }
    }

    /// The last `n` kept lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<Arc<Line>> {
        self.lock().last(n)
    }

    /// The last `n` kept lines, and `tx` registered for every line after
    /// them (in one step, so none is missed or doubled). False when the
    /// buffer is closed (its job is gone): nothing will ever come.
    pub fn follow(&self, n: usize, tx: Sender<Arc<Line>>) -> (Vec<Arc<Line>>, bool) {
        let mut inner = self.lock();
        let lines = inner.last(n);
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

    /// Heap bytes held for kept lines (for the tests of the bound).
    #[cfg(test)]
    fn held(&self) -> usize {
        let inner = self.lock();
        inner.text.capacity() + inner.meta.capacity() * std::mem::size_of::<Meta>()
    }
}

impl Inner {
    /// Add a line, dropping the oldest when `keep` are kept already.
    fn keep_line(&mut self, meta: Meta, text: &[u8]) {
        if self.meta.len() >= self.keep {
            if let Some(old) = self.meta.pop_front() {
                self.text.drain(..usize::from(old.len).min(self.text.len()));
            }
        }
        if self.meta.len() == self.meta.capacity() {
            // Doubling, but never past `keep`.
            let want = (self.meta.capacity() * 2).max(8).min(self.keep);
            self.meta
                .reserve_exact(want.saturating_sub(self.meta.len()).max(1));
        }
        let need = self.text.len() + text.len();
        if need > self.text.capacity() {
            // In steps, not doubling: what is held stays within a step
            // of what the kept lines need.
            let most = self.keep.saturating_mul(MAX_LINE);
            let want = need.max((self.text.capacity() + GROW).min(most));
            self.text.reserve_exact(want - self.text.len());
        }
        self.meta.push_back(meta);
        self.text.extend(text);
    }

    fn last(&self, n: usize) -> Vec<Arc<Line>> {
        let skip = self.meta.len().saturating_sub(n);
        let mut at: usize = self
            .meta
            .iter()
            .take(skip)
            .map(|m| usize::from(m.len))
            .sum();
        let (front, back) = self.text.as_slices();
        self.meta
            .iter()
            .skip(skip)
            .map(|m| {
                let len = usize::from(m.len);
                let mut bytes = Vec::with_capacity(len);
                bytes.extend_from_slice(front.get(at..(at + len).min(front.len())).unwrap_or(&[]));
                let from = at.max(front.len()) - front.len();
                let left = len - bytes.len();
                bytes.extend_from_slice(back.get(from..from + left).unwrap_or(&[]));
                at += len;
                Arc::new(Line {
                    at: time_of(m.micros),
                    stream: m.stream,
                    text: String::from_utf8(bytes)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                })
            })
            .collect()
    }
}

fn time_of(micros: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(micros)
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
            b.push(SystemTime::now(), Stream::Stdout, &format!("line {i}"));
        }
        assert_eq!(texts(&b.last(10)), ["line 2", "line 3", "line 4"]);
        assert_eq!(texts(&b.last(1)), ["line 4"]);
        assert_eq!(b.last(0).len(), 0);
    }

    #[test]
    fn keep_zero_keeps_nothing() {
        let b = LogBuffer::new(0);
        b.push(SystemTime::now(), Stream::Stderr, "x");
        assert!(b.last(100).is_empty());
    }

    #[test]
    fn keep_zero_holds_nothing_even_while_followed() {
        let b = LogBuffer::new(0);
        let (tx, rx) = bounded(4);
        b.follow(10, tx);
        b.push(SystemTime::now(), Stream::Stdout, &"x".repeat(5000));
        assert_eq!(rx.recv().unwrap().text.len(), MAX_LINE);
        assert!(b.last(10).is_empty());
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let b = LogBuffer::new(2);
        // "é" is two bytes: after the "a" the 1 KiB mark falls inside one.
        let odd = "a".to_string() + &"é".repeat(MAX_LINE);
        b.push(SystemTime::now(), Stream::Check, &odd);
        let even = "é".repeat(MAX_LINE);
        b.push(SystemTime::now(), Stream::Stderr, &even);
        let kept = b.last(2);
        assert_eq!(kept[0].text, odd[..MAX_LINE - 1]);
        assert_eq!(kept[0].stream, Stream::Check);
        assert_eq!(kept[1].text, even[..MAX_LINE]);
        // Short enough: kept whole.
        assert_eq!(cut("héllo", MAX_LINE), "héllo");
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("", 0), "");
    }

    #[test]
    fn lines_that_wrap_round_the_ring_come_back_whole() {
        // Once full, each new line lands where the oldest was: a line
        // split across the ring's end must read back as one.
        let b = LogBuffer::new(3);
        let mut wrapped = 0;
        for i in 0..200usize {
            let text: String = (0..(i * 7 % 300 + 1))
                .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
                .collect();
            b.push(SystemTime::now(), Stream::Stdout, &text);
            if !b.lock().text.as_slices().1.is_empty() {
                wrapped += 1;
            }
            assert_eq!(b.last(1)[0].text, text, "line {i}");
        }
        assert!(wrapped > 10, "the ring wrapped {wrapped} times only");
        assert_eq!(b.last(10).len(), 3);
    }

    #[test]
    fn followers_get_new_lines_and_slow_ones_are_dropped() {
        let b = LogBuffer::new(2);
        b.push(SystemTime::now(), Stream::Stdout, "old");
        let (tx, rx) = bounded(2);
        let (past, open) = b.follow(10, tx);
        assert!(open);
        assert_eq!(texts(&past), ["old"]);
        b.push(SystemTime::now(), Stream::Stdout, "a");
        b.push(SystemTime::now(), Stream::Stdout, "b");
        // The queue is full: the next line drops the follower.
        b.push(SystemTime::now(), Stream::Stdout, "c");
        assert_eq!(rx.recv().unwrap().text, "a");
        assert_eq!(rx.recv().unwrap().text, "b");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        // A follower is fed even with keep = 0.
        let quiet = LogBuffer::new(0);
        let (tx, rx) = bounded(4);
        quiet.follow(10, tx);
        quiet.push(SystemTime::now(), Stream::Stdout, "live");
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

    #[test]
    fn kept_lines_come_back_as_written() {
        // Against a plain list, across many turns of the ring, with lines
        // of every length (multi-byte characters cut on a boundary).
        for keep in [1, 2, 7, 100] {
            let b = LogBuffer::new(keep);
            let mut model: VecDeque<(u64, Stream, String)> = VecDeque::new();
            for i in 0..1000u64 {
                let text = "é".repeat((i * 37 % 700) as usize) + &"x".repeat((i % 5) as usize);
                let stream = [Stream::Stdout, Stream::Stderr, Stream::Check][(i % 3) as usize];
                let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + i);
                b.push(at, stream, &text);
                model.push_back((i, stream, cut(&text, MAX_LINE).to_string()));
                if model.len() > keep {
                    model.pop_front();
                }
                if i % 97 == 0 || i > 990 {
                    let n = (i as usize % (keep + 3)).max(1);
                    let got = b.last(n);
                    let want: Vec<_> = model.iter().skip(model.len().saturating_sub(n)).collect();
                    assert_eq!(got.len(), want.len());
                    for (g, (j, stream, text)) in got.iter().zip(want) {
                        assert_eq!(
                            g.at,
                            UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + j)
                        );
                        assert_eq!((g.stream, &g.text), (*stream, text));
                    }
                }
            }
        }
    }

    #[test]
    fn memory_is_bounded_by_keep_and_flat() {
        // SPEC §8: kept lines cost at most `keep` × 1 KiB a job (and 16
        // bytes a line of bookkeeping), however long the lines written.
        let keep = 100;
        let b = LogBuffer::new(keep);
        let bound = keep * (MAX_LINE + 16);
        let long = "x".repeat(20_000);
        let mut held = Vec::new();
        for i in 0..5000 {
            let text = match i % 3 {
                0 => &long[..80],
                1 => &long[..1500],
                _ => &long[..],
            };
            b.push(SystemTime::now(), Stream::Stdout, text);
            held.push(b.held());
        }
        let most = held.iter().copied().max().unwrap_or(0);
        assert!(most <= bound, "{most} > {bound}");
        // Once full, nothing more is allocated.
        assert_eq!(held[1000], held[4999]);
        // Short lines cost what they hold, within a step of the ring's growth.
        let b = LogBuffer::new(keep);
        for _ in 0..1000 {
            b.push(SystemTime::now(), Stream::Stdout, &long[..80]);
        }
        assert!(b.held() <= keep * (80 + 16) + GROW, "{}", b.held());
        // Nothing written, nothing held.
        assert_eq!(LogBuffer::new(keep).held(), 0);
    }
}
