//! A process's output pipe read line by line by the thread that polls it
//! (SPEC §3.2 "Output"): each complete line is handed on as soon as it is
//! read, very long lines are split (never dropped), a `\r` before the
//! newline is dropped, and a partial last line is handed on at the end.
//!
//! Every pipe is read into one buffer shared by all the threads that read
//! pipes, taken in turns: a thread per job must not each hold a line's
//! worth of memory (16 KiB) while it waits for the logger, which is what
//! 100 jobs printing long lines did. Lines are handed on straight from that
//! buffer; only a line still unfinished when its pipe runs dry is copied
//! out, into the pipe's own buffer (at most [`MAX_LINE`] bytes, given back
//! once the line is done), so an idle pipe holds no memory.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::unistd::read;

use crate::log;
use crate::logbuf::{LogBuffer, Stream};

/// Lines longer than this become several entries.
pub const MAX_LINE: usize = 16 * 1024;
/// The shared read buffer: a pipe's whole capacity (64 KiB on Linux) in
/// one read, with room for an unfinished line carried in front.
const SHARED: usize = 64 * 1024 + MAX_LINE;
/// At most this much is read per call, so one chatty pipe cannot starve
/// the other or the thread's inbox.
const BUDGET: usize = 256 * 1024;

/// The read buffer every pipe uses, one reader at a time. Static and zero:
/// it costs no memory until the first read, then its pages once. Taken
/// before the logger's lock (the sink logs each line), never after it;
/// reads are non-blocking, so it is only ever held briefly.
static READ_BUF: Mutex<[u8; SHARED]> = Mutex::new([0; SHARED]);

/// Where a pipe's lines go.
pub trait LineSink {
    fn line(&mut self, stream: Stream, text: &str);
    /// The lines handed on since the last call are all that one read
    /// brought: a time to write them out. Called before the pipe is read
    /// again, and at its end.
    fn flush(&mut self) {}
}

impl<F: FnMut(Stream, &str)> LineSink for F {
    fn line(&mut self, stream: Stream, text: &str) {
        self(stream, text)
    }
}

/// The usual sink: each line logged at INFO (SPEC §7) and kept in the
/// job's buffer (SPEC §4.1). The lines of one read are logged as one batch:
/// one lock of the logger, one time, one write.
pub struct Logged<'a> {
    /// `"job"` or `"check"`: the field that names `name`.
    pub kind: &'static str,
    pub name: &'a str,
    pub pid: &'a str,
    pub keep: &'a LogBuffer,
    batch: Option<log::Batch<'static>>,
}

impl<'a> Logged<'a> {
    pub fn new(kind: &'static str, name: &'a str, pid: &'a str, keep: &'a LogBuffer) -> Self {
        Logged {
            kind,
            name,
            pid,
            keep,
            batch: None,
        }
    }
}

impl LineSink for Logged<'_> {
    fn line(&mut self, stream: Stream, text: &str) {
        let batch = self.batch.get_or_insert_with(log::batch);
        batch.output_line(self.kind, self.name, self.pid, stream.name(), text);
        self.keep.push(batch.now(), stream, text);
    }

    fn flush(&mut self) {
        self.batch = None;
    }
}

/// A process's output pipes, stdout's and stderr's (a check has one for
/// both, a raw job none), read as one by the thread that started it.
pub struct Pipes([Option<Pipe>; 2]);

impl Pipes {
    pub fn new(out: Option<Pipe>, err: Option<Pipe>) -> Pipes {
        Pipes([out, err])
    }

    /// The descriptors not yet at end of file, for poll(2).
    pub fn fds(&self) -> [Option<BorrowedFd<'_>>; 2] {
        self.0
            .each_ref()
            .map(|p| p.as_ref().filter(|p| p.is_open()).map(Pipe::fd))
    }

    /// Some pipe is not yet at end of file.
    pub fn any_open(&self) -> bool {
        self.0.iter().flatten().any(Pipe::is_open)
    }

    /// Read what the open pipes hold now (see `Pipe::read`).
    pub fn read(&mut self, out: &mut dyn LineSink) {
        for p in self.0.iter_mut().flatten().filter(|p| p.is_open()) {
            p.read(out);
        }
    }

    /// Hand on every pipe's partial last line (see `Pipe::flush`).
    pub fn flush(&mut self, out: &mut dyn LineSink) {
        for p in self.0.iter_mut().flatten() {
            p.flush(out);
        }
    }
}

pub struct Pipe {
    fd: OwnedFd,
    stream: Stream,
    /// An unfinished line: no newline in it, shorter than `MAX_LINE`.
    buf: Vec<u8>,
    open: bool,
}

impl Pipe {
    /// `fd` must be non-blocking.
    pub fn new(fd: OwnedFd, stream: Stream) -> Pipe {
        Pipe {
            fd,
            stream,
            buf: Vec::new(),
            open: true,
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Not yet at end of file.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Read what the pipe holds now, handing on each complete line; at end
    /// of file the partial last line too. Ends with `out.flush()`.
    pub fn read(&mut self, out: &mut dyn LineSink) {
        let mut shared = READ_BUF.lock().unwrap_or_else(|e| e.into_inner());
        let buf = &mut shared[..];
        // The unfinished line, at the front of `buf` (shorter than MAX_LINE,
        // as complete_lines leaves it; min() only so that it cannot panic).
        let mut carried = self.buf.len().min(MAX_LINE);
        buf[..carried].copy_from_slice(&self.buf[..carried]);
        let mut total = 0;
        let was_open = self.open;
        while self.open && total < BUDGET {
            match read(&self.fd, &mut buf[carried..]) {
                Ok(0) => self.open = false,
                Ok(n) => {
                    total += n;
                    let data = &buf[..carried + n];
                    let done = complete_lines(self.stream, data, out);
                    carried = data.len() - done;
                    buf.copy_within(done..done + carried, 0);
                    out.flush();
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    // EIO and the like: treat as the end, keep what we have.
                    crate::log::debug(&format!(
                        "cannot read process output: {}",
                        io::Error::from(e)
                    ));
                    self.open = false;
                }
            }
        }
        if was_open && !self.open && carried > 0 {
            // It ended here: the partial last line goes too.
            emit(self.stream, &buf[..carried], out);
            carried = 0;
        }
        out.flush();
        self.keep_unfinished(&buf[..carried]);
    }

    /// Keep `rest`, a line the pipe has not finished yet, until it does;
    /// nothing held when there is none.
    fn keep_unfinished(&mut self, rest: &[u8]) {
        if rest.is_empty() {
            self.buf = Vec::new();
            return;
        }
        if rest.len() > self.buf.capacity() {
            // A line written in dribs: room to grow, never past MAX_LINE.
            let want = (rest.len() * 2).clamp(64, MAX_LINE).max(rest.len());
            self.buf = Vec::with_capacity(want);
        }
        self.buf.clear();
        self.buf.extend_from_slice(rest);
    }

    /// Hand on a partial last line (the process is gone, or we stop
    /// waiting for the pipe to close).
    pub fn flush(&mut self, out: &mut dyn LineSink) {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            emit(self.stream, &rest, out);
        }
        out.flush();
    }
}

/// Hand on every complete line at the start of `data` (a line longer than
/// `MAX_LINE` in pieces of that size); where the unfinished rest begins.
fn complete_lines(stream: Stream, data: &[u8], out: &mut dyn LineSink) -> usize {
    let mut start = 0;
    loop {
        let rest = &data[start..];
        let window = &rest[..rest.len().min(MAX_LINE + 1)];
        match find_newline(window) {
            Some(nl) => {
                emit(stream, &rest[..nl], out);
                start += nl + 1;
            }
            None if rest.len() >= MAX_LINE => {
                emit(stream, &rest[..MAX_LINE], out);
                start += MAX_LINE;
            }
            None => return start,
        }
    }
}

/// The first `\n` in `hay`, eight bytes at a time.
fn find_newline(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut at = 0;
    for word in hay.chunks_exact(8) {
        let Ok(bytes) = <[u8; 8]>::try_from(word) else {
            break;
        };
        // A zero byte where `word` holds a newline; the test is exact.
        let x = u64::from_ne_bytes(bytes) ^ NEWLINES;
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            break;
        }
        at += 8;
    }
    hay[at..].iter().position(|b| *b == b'\n').map(|i| at + i)
}

fn emit(stream: Stream, raw: &[u8], out: &mut dyn LineSink) {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    match std::str::from_utf8(raw) {
        Ok(text) => out.line(stream, text),
        Err(_) => out.line(stream, &String::from_utf8_lossy(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use nix::unistd::{pipe, write};

    fn pipe_pair() -> (Pipe, OwnedFd) {
        let (r, w) = pipe().unwrap();
        fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
        (Pipe::new(r, Stream::Stdout), w)
    }

    fn collect(p: &mut Pipe) -> Vec<String> {
        let mut got = Vec::new();
        p.read(&mut |_: Stream, l: &str| got.push(l.to_string()));
        got
    }

    #[test]
    fn lines_partial_lines_and_eof() {
        let (mut p, w) = pipe_pair();
        write(&w, b"one\r\ntwo\nthr").unwrap();
        assert_eq!(collect(&mut p), ["one", "two"]);
        assert!(p.is_open());
        write(&w, b"ee\nfour").unwrap();
        assert_eq!(collect(&mut p), ["three"]);
        drop(w);
        assert_eq!(collect(&mut p), ["four"]);
        assert!(!p.is_open());
    }

    #[test]
    fn long_lines_are_split_never_dropped() {
        let (mut p, w) = pipe_pair();
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let t = std::thread::spawn(move || {
            write(&w, &long).unwrap();
            write(&w, b"\nend\n").unwrap();
        });
        let mut got = Vec::new();
        while got.len() < 4 {
            p.read(&mut |_: Stream, l: &str| got.push(l.len()));
        }
        t.join().unwrap();
        assert_eq!(got, [MAX_LINE, MAX_LINE, 10, 3]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let (mut p, w) = pipe_pair();
        write(&w, b"a\xffb\n").unwrap();
        assert_eq!(collect(&mut p), ["a\u{fffd}b"]);
    }

    #[test]
    fn newlines_are_found_wherever_they_are() {
        let mut hay = vec![b'x'; 40];
        assert_eq!(find_newline(&hay), None);
        assert_eq!(find_newline(&[]), None);
        for at in 0..40 {
            hay[at] = b'\n';
            for end in at + 1..=40 {
                assert_eq!(find_newline(&hay[..end]), Some(at), "at {at} of {end}");
            }
            assert_eq!(find_newline(&hay[..at]), None);
            // Bytes that differ from a newline in one bit only.
            hay[at] = b'\n' ^ (1 << (at % 8));
            assert_eq!(find_newline(&hay), None);
            hay[at] = b'x';
        }
        hay[9] = b'\n';
        hay[30] = b'\n';
        assert_eq!(find_newline(&hay), Some(9));
    }

    /// What a stream of bytes becomes, read all at once.
    fn reference(data: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut parts = data.split(|b| *b == b'\n').peekable();
        while let Some(line) = parts.next() {
            if parts.peek().is_none() && line.is_empty() {
                break;
            }
            let mut rest = line;
            while rest.len() > MAX_LINE {
                lines.push(String::from_utf8_lossy(&rest[..MAX_LINE]).into_owned());
                rest = &rest[MAX_LINE..];
            }
            lines.push(String::from_utf8_lossy(rest).into_owned());
        }
        lines
    }

    #[test]
    fn any_split_of_the_writes_gives_the_same_lines() {
        // A small deterministic generator: the same case every run.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for round in 0..20 {
            let mut data = Vec::new();
            while data.len() < 200_000 {
                let len = match next(4) {
                    0 => next(10),
                    1 => next(200),
                    2 => next(5000),
                    _ => next(3 * MAX_LINE),
                };
                // A line of exactly n × MAX_LINE may end in an empty line
                // or not, as the reads fall: left out here.
                if len > 0 && len % MAX_LINE == 0 {
                    continue;
                }
                data.extend((0..len).map(|i| b'a' + (i % 26) as u8));
                data.push(b'\n');
            }
            if round % 2 == 1 {
                data.extend_from_slice(b"no newline at the end");
            }
            let want = reference(&data);
            let (mut p, w) = pipe_pair();
            let mut sizes = Vec::new();
            while sizes.iter().sum::<usize>() < data.len() {
                sizes.push(1 + next(if round < 10 { 100 } else { 30_000 }));
            }
            let writer = std::thread::spawn(move || {
                let mut at = 0;
                for size in sizes {
                    let end = (at + size).min(data.len());
                    let mut rest = &data[at..end];
                    while !rest.is_empty() {
                        match write(&w, rest) {
                            Ok(n) => rest = &rest[n..],
                            Err(e) => panic!("write: {e}"),
                        }
                    }
                    at = end;
                }
            });
            let mut got = Vec::new();
            while p.is_open() {
                let mut fds = [nix::poll::PollFd::new(p.fd(), nix::poll::PollFlags::POLLIN)];
                nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(5000u16)).unwrap();
                p.read(&mut |_: Stream, l: &str| got.push(l.to_string()));
                assert!(p.buf.capacity() <= MAX_LINE, "{}", p.buf.capacity());
            }
            writer.join().unwrap();
            assert_eq!(got.len(), want.len(), "round {round}");
            assert!(got == want, "round {round}: lines differ");
        }
    }

    #[test]
    fn a_line_without_end_costs_at_most_max_line() {
        let (mut p, w) = pipe_pair();
        let writer = std::thread::spawn(move || {
            let block = vec![b'y'; 64 * 1024];
            for _ in 0..32 {
                let mut rest = &block[..];
                while !rest.is_empty() {
                    rest = &rest[write(&w, rest).unwrap()..];
                }
            }
            write(&w, b"\n").unwrap();
        });
        let mut lines = 0;
        let mut bytes = 0;
        let mut last = usize::MAX;
        while last != 0 {
            let mut fds = [nix::poll::PollFd::new(p.fd(), nix::poll::PollFlags::POLLIN)];
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(5000u16)).unwrap();
            p.read(&mut |_: Stream, l: &str| {
                lines += 1;
                bytes += l.len();
                last = l.len();
            });
            assert!(p.buf.capacity() <= MAX_LINE, "{}", p.buf.capacity());
        }
        writer.join().unwrap();
        // 2 MiB in pieces of 16 KiB; the newline ends an empty piece.
        assert_eq!(
            (lines, bytes),
            (2 * 1024 * 1024 / MAX_LINE + 1, 2 * 1024 * 1024)
        );
        // Nothing unfinished: nothing held.
        assert_eq!(p.buf.capacity(), 0);
    }
}
