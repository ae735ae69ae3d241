//! A process's output pipe read line by line by the thread that polls it
//! (SPEC §3.2 "Output"): each complete line is handed on as soon as it is
//! read, very long lines are split (never dropped), a `\r` before the
//! newline is dropped, and a partial last line is handed on at the end.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::unistd::read;

use crate::logbuf::Stream;

/// Lines longer than this become several entries.
pub const MAX_LINE: usize = 16 * 1024;
/// A line buffer grown past this is released once empty.
const KEEP_CAPACITY: usize = 4096;
/// At most this much is read per call, so one chatty pipe cannot starve
/// the other or the thread's inbox.
const BUDGET: usize = 256 * 1024;

pub struct Pipe {
    fd: OwnedFd,
    stream: Stream,
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
    /// of file the partial last line too.
    pub fn read(&mut self, line: &mut dyn FnMut(Stream, &str)) {
        // Small: it stays resident on the stack of every thread that reads.
        let mut chunk = [0u8; 4096];
        let mut total = 0;
        while self.open && total < BUDGET {
            match read(&self.fd, &mut chunk) {
                Ok(0) => {
                    self.open = false;
                    self.flush(line);
                }
                Ok(n) => {
                    total += n;
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.split(line);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    // EIO and the like: treat as the end, keep what we have.
                    crate::log::debug(&format!(
                        "cannot read process output: {}",
                        io::Error::from(e)
                    ));
                    self.open = false;
                    self.flush(line);
                }
            }
        }
    }

    fn split(&mut self, line: &mut dyn FnMut(Stream, &str)) {
        let mut start = 0;
        loop {
            let rest = &self.buf[start..];
            match rest.iter().position(|b| *b == b'\n') {
                Some(nl) if nl <= MAX_LINE => {
                    emit(self.stream, &rest[..nl], line);
                    start += nl + 1;
                }
                _ if rest.len() >= MAX_LINE => {
                    emit(self.stream, &rest[..MAX_LINE], line);
                    start += MAX_LINE;
                }
                _ => break,
            }
        }
        self.buf.drain(..start);
        // A long line grew the buffer: give the memory back once it is
        // handed on, so that a job's memory is its kept lines, not its
        // longest line ever.
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
    }

    /// Hand on a partial last line (the process is gone, or we stop
    /// waiting for the pipe to close).
    pub fn flush(&mut self, line: &mut dyn FnMut(Stream, &str)) {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            emit(self.stream, &rest, line);
        }
    }
}

fn emit(stream: Stream, raw: &[u8], line: &mut dyn FnMut(Stream, &str)) {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    line(stream, &String::from_utf8_lossy(raw));
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
        p.read(&mut |_, l| got.push(l.to_string()));
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
            p.read(&mut |_, l| got.push(l.len()));
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
}
