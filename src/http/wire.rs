//! The HTTP/1.1 wire format, one implementation for the server and the
//! client: finding and parsing a message head, what its framing headers
//! mean, decoding chunked bodies, and writing response heads.
//!
//! Nothing here owns a socket. Reading goes through a `fill` callback
//! supplied by the caller, so timeouts and deadlines stay with the caller;
//! limits come in as parameters and failures come out as small enums that
//! the caller words for its own side (a status code for the server, a
//! reason for the client). The server is strict where RFC 9112 lets a
//! recipient refuse, because two readings of one request are how requests
//! are smuggled; the client takes what real servers send.

use std::io::{self, Read};
use std::ops::ControlFlow;

/// The first header called `name`, ignoring ASCII case (requests and
/// responses alike).
pub(super) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Header fields in the order received, names as spelt by the sender.
pub(super) type Fields = Vec<(String, String)>;

/// Where the first line in `data` ends: its length without the line ending
/// (`\n` or `\r\n`) and with it.
fn line_end(data: &[u8]) -> Option<(usize, usize)> {
    let nl = data.iter().position(|&b| b == b'\n')?;
    let len = if nl > 0 && data[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    Some((len, nl + 1))
}

/// The length of the head including the empty line that ends it.
pub(super) fn find_head_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'\n') {
        let nl = i + off;
        let rest = &b[nl + 1..];
        if rest.starts_with(b"\n") {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

/// RFC 9110 §5.6.2 token characters (method and header names).
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Bytes received and not yet consumed.
#[derive(Debug, Default)]
pub(super) struct RecvBuf {
    /// Storage, all of it initialised once: a read never zero-fills it
    /// again (that was a tenth of the server's time per ping).
    buf: Vec<u8>,
    /// The unconsumed bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
}

impl RecvBuf {
    /// Over an existing allocation, e.g. one kept from an earlier
    /// connection (its contents are old bytes, never read as data).
    pub(super) fn with_vec(buf: Vec<u8>) -> RecvBuf {
        RecvBuf {
            buf,
            pos: 0,
            end: 0,
        }
    }

    /// The allocation back, to keep for the next connection.
    pub(super) fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    pub(super) fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
        if self.pos == self.end {
            self.clear();
        }
    }

    pub(super) fn clear(&mut self) {
        self.pos = 0;
        self.end = 0;
    }

    /// One read of up to `chunk` bytes appended; `Ok(0)` at end of stream.
    /// Retries on EINTR.
    pub(super) fn read_from<R: Read + ?Sized>(
        &mut self,
        reader: &mut R,
        chunk: usize,
    ) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() < self.end + chunk {
            self.buf.resize(self.end + chunk, 0);
        }
        loop {
            match reader.read(&mut self.buf[self.end..self.end + chunk]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// How a head's fields are read.
#[derive(Debug, Clone, Copy)]
pub(super) struct FieldRules {
    /// Refuse field names that are not tokens and obsolete line folding
    /// (RFC 9112 §5.1, §5.2), as a server should; else take any line with a
    /// colon, trimming the name.
    pub strict: bool,
    /// Most fields in one head.
    pub max_fields: usize,
}

/// Why a head's fields could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldError {
    /// More than `FieldRules::max_fields`.
    TooMany,
    /// A line that is not `name: value` under the rules.
    Malformed,
}

/// Splits a head (as delimited by `find_head_end`) into its start line and
/// the rest, for `parse_fields`.
pub(super) fn split_head(head: &str) -> (&str, &str) {
    let (start, rest) = head.split_once('\n').unwrap_or((head, ""));
    (start.strip_suffix('\r').unwrap_or(start), rest)
}

/// The fields of a head, after its start line (see `split_head`). Values
/// are trimmed of spaces and tabs; names keep their spelling.
pub(super) fn parse_fields(
    fields: &str,
    rules: FieldRules,
) -> Result<Vec<(String, String)>, FieldError> {
    let mut parsed = Vec::new();
    for line in fields
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
    {
        if line.is_empty() {
            break;
        }
        if parsed.len() >= rules.max_fields {
            return Err(FieldError::TooMany);
        }
        if rules.strict && line.starts_with([' ', '\t']) {
            return Err(FieldError::Malformed);
        }
        let (name, value) = line.split_once(':').ok_or(FieldError::Malformed)?;
        let name = if rules.strict {
            if !is_token(name) {
                return Err(FieldError::Malformed);
            }
            name
        } else {
            name.trim()
        };
        parsed.push((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()));
    }
    Ok(parsed)
}

/// A request refused while it was parsed: answer `status` with
/// `{"error": message}` and close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal {
    pub status: u16,
    pub message: &'static str,
}

const fn refuse(status: u16, message: &'static str) -> Refusal {
    Refusal { status, message }
}

/// What the server limits while parsing a request head.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestRules {
    pub max_headers: usize,
    pub max_body: usize,
}

/// A request head as the server understood it.
#[derive(Debug)]
pub(super) struct RequestHead {
    pub method: String,
    /// Up to `?`, reduced to its path when in absolute form.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub http10: bool,
    /// What the client asked for with `Connection` (and its version).
    pub keep_alive: bool,
    pub framing: Framing,
    pub expect_continue: bool,
}

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Length(usize),
    Chunked,
}

/// Parses a request head (RFC 9112 §3, §6), refusing anything that could be
/// read two ways.
pub(super) fn parse_request_head(head: &str, rules: RequestRules) -> Result<RequestHead, Refusal> {
    let (request_line, fields) = split_head(head);
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(refuse(400, "malformed request line")),
    };
    if !is_token(method) {
        return Err(refuse(400, "malformed request method"));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") => return Err(refuse(505, "HTTP version not supported")),
        _ => return Err(refuse(400, "malformed request line")),
    };
    if target.is_empty() || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(refuse(400, "malformed request target"));
    }
    // Absolute form (RFC 9112 §3.2.2), as sent to proxies: keep the path.
    let target = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => &rest[rest.find(['/', '?']).unwrap_or(rest.len())..],
        None => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = if path.is_empty() { "/" } else { path };

    let field_rules = FieldRules {
        strict: true,
        max_fields: rules.max_headers,
    };
    let headers = parse_fields(fields, field_rules).map_err(|e| match e {
        FieldError::TooMany => refuse(431, "too many request headers"),
        FieldError::Malformed => refuse(400, "malformed request header"),
    })?;
    let mut keep_alive = !http10;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut expect_continue = false;
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            // A list of equal values is allowed (RFC 9110 §8.6); anything
            // else could be read two ways, so it is refused.
            for v in value.split(',').map(str::trim) {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(refuse(400, "malformed Content-Length"));
                }
                let n: u64 = v
                    .parse()
                    .map_err(|_| refuse(413, "request body too large"))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(refuse(400, "conflicting Content-Length"));
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Only plain `chunked` is supported; we do not decompress.
            let codings: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            if codings.len() != 1 || !codings[0].eq_ignore_ascii_case("chunked") || chunked {
                return Err(refuse(501, "unsupported Transfer-Encoding"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case("100-continue") {
                return Err(refuse(417, "unsupported Expect"));
            }
            expect_continue = !http10;
        }
    }
    // Both framings at once is how requests are smuggled (RFC 9112 §6.1).
    if transfer_encoding && (content_length.is_some() || http10) {
        return Err(refuse(400, "malformed request framing"));
    }
    let framing = match content_length {
        _ if chunked => Framing::Chunked,
        Some(n) if n > rules.max_body as u64 => return Err(refuse(413, "request body too large")),
        Some(n) => Framing::Length(n as usize),
        None => Framing::Length(0),
    };
    Ok(RequestHead {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        http10,
        keep_alive,
        framing,
        expect_continue,
    })
}

/// Parses a response head: the status code and the fields, leniently.
pub(super) fn parse_response_head(head: &str) -> Result<(u16, Fields), &'static str> {
    let (status_line, fields) = split_head(head);
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.")
        || code.len() != 3
        || !code.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("not an HTTP/1.x status line");
    }
    let status = code.parse().map_err(|_| "not an HTTP/1.x status line")?;
    let rules = FieldRules {
        strict: false,
        max_fields: usize::MAX,
    };
    let headers = parse_fields(fields, rules).map_err(|_| "malformed response header")?;
    Ok((status, headers))
}

/// How a response body is framed (RFC 9112 §6.3), as a client reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ResponseFraming {
    /// No body at all (HEAD, 1xx, 204, 304).
    None,
    Chunked,
    Length(u64),
    /// No framing: the body ends with the connection.
    UntilClose,
}

/// The framing of a response to a request that was (`head_only`) or was
/// not a HEAD.
pub(super) fn response_framing(
    status: u16,
    headers: &[(String, String)],
    head_only: bool,
) -> Result<ResponseFraming, &'static str> {
    if head_only || status < 200 || status == 204 || status == 304 {
        return Ok(ResponseFraming::None);
    }
    // The last coding is the one that frames the message.
    let chunked = header(headers, "transfer-encoding").is_some_and(|te| {
        te.rsplit(',')
            .next()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
    });
    if chunked {
        return Ok(ResponseFraming::Chunked);
    }
    match header(headers, "content-length") {
        Some(length) => length
            .trim()
            .parse()
            .map(ResponseFraming::Length)
            .map_err(|_| "malformed Content-Length"),
        None => Ok(ResponseFraming::UntilClose),
    }
}

/// Why a chunked body could not be decoded.
#[derive(Debug)]
pub(super) enum ChunkError<E> {
    /// A chunk-size line or chunk end that is not RFC 9112 §7.1.
    Malformed,
    /// A chunk-size or trailer line longer than allowed.
    LineTooLong,
    /// More data (or trailers) than allowed.
    TooLarge,
    /// The stream ended before the body did.
    Closed,
    /// `fill` failed.
    Fill(E),
}

/// Limits on a chunked body.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChunkRules {
    /// Longest chunk-size line (a hex number plus extensions) while it is
    /// incomplete.
    pub max_line: usize,
    /// Most data bytes in all; a chunk that would go over is refused before
    /// it is read.
    pub max_body: u64,
    /// Only hex digits, spaces and tabs in a chunk size, as a server should;
    /// else any surrounding white space and a sign are tolerated.
    pub strict: bool,
}

/// Reads until a whole line is buffered; its length without the line
/// ending and with it.
fn read_line<E>(
    input: &mut RecvBuf,
    fill: &mut impl FnMut(&mut RecvBuf) -> Result<usize, E>,
    max: usize,
) -> Result<(usize, usize), ChunkError<E>> {
    loop {
        let data = input.buffered();
        if let Some(line) = line_end(data) {
            return Ok(line);
        }
        if data.len() > max {
            return Err(ChunkError::LineTooLong);
        }
        if fill(input).map_err(ChunkError::Fill)? == 0 {
            return Err(ChunkError::Closed);
        }
    }
}

fn chunk_size(line: &[u8], strict: bool) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits).ok()?;
    let digits = if strict {
        digits.trim_matches([' ', '\t'])
    } else {
        digits.trim()
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    if strict && !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Decodes the chunks of a chunked body (RFC 9112 §7.1) up to and including
/// the last (empty) chunk, handing data to `sink` as it arrives, which may
/// be part of a chunk. Stops early when `sink` says so. Trailers are left
/// for `skip_trailers`.
pub(super) fn read_chunks<E>(
    input: &mut RecvBuf,
    fill: &mut impl FnMut(&mut RecvBuf) -> Result<usize, E>,
    rules: ChunkRules,
    sink: &mut impl FnMut(&[u8]) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, ChunkError<E>> {
    let mut total: u64 = 0;
    loop {
        let (len, line_total) = read_line(input, fill, rules.max_line)?;
        let size =
            chunk_size(&input.buffered()[..len], rules.strict).ok_or(ChunkError::Malformed)?;
        input.consume(line_total);
        if size == 0 {
            return Ok(ControlFlow::Continue(()));
        }
        if size > rules.max_body - total {
            return Err(ChunkError::TooLarge);
        }
        total += size;
        let mut left = size;
        while left > 0 {
            if input.buffered().is_empty() && fill(input).map_err(ChunkError::Fill)? == 0 {
                return Err(ChunkError::Closed);
            }
            let data = input.buffered();
            let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let flow = sink(&data[..n]);
            input.consume(n);
            left -= n as u64;
            if flow.is_break() {
                return Ok(flow);
            }
        }
        // The data ends with CRLF (a bare LF is tolerated).
        loop {
            let data = input.buffered();
            if data.starts_with(b"\r\n") {
                input.consume(2);
                break;
            }
            if data.starts_with(b"\n") {
                input.consume(1);
                break;
            }
            if !data.is_empty() && data != b"\r" {
                return Err(ChunkError::Malformed);
            }
            if fill(input).map_err(ChunkError::Fill)? == 0 {
                return Err(ChunkError::Closed);
            }
        }
    }
}

/// Reads and drops the trailer section that follows the last chunk, each
/// line at most `max_line` long while incomplete and `max_total` bytes in
/// all.
pub(super) fn skip_trailers<E>(
    input: &mut RecvBuf,
    fill: &mut impl FnMut(&mut RecvBuf) -> Result<usize, E>,
    max_line: usize,
    max_total: usize,
) -> Result<(), ChunkError<E>> {
    let mut seen = 0;
    loop {
        let (len, total) = read_line(input, fill, max_line)?;
        input.consume(total);
        if len == 0 {
            return Ok(());
        }
        seen += total;
        if seen > max_total {
            return Err(ChunkError::TooLarge);
        }
    }
}

/// Which `Connection` header a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnHeader {
    /// HTTP/1.1 keep-alive, the default: nothing to say.
    None,
    /// The server closes after this response.
    Close,
    /// An HTTP/1.0 client asked to keep the connection.
    KeepAlive,
}

/// How a response says where its body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyFraming {
    Length(u64),
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0 has no chunks).
    Close,
}

/// Whether a response with this status has a body at all (RFC 9110 §6.4.1:
/// 1xx, 204 and 304 have none).
pub(super) fn has_body(status: u16) -> bool {
    !(status < 200 || status == 204 || status == 304)
}

/// Serialises a response head into `out`. `Content-Length`, `Connection`
/// and `Transfer-Encoding` come from the framing arguments only; a header
/// that would inject a line or is not a token is dropped rather than sent
/// broken.
pub(super) fn encode_head(
    status: u16,
    headers: &[(String, String)],
    framing: BodyFraming,
    connection: ConnHeader,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status.clamp(100, 999)));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        let framing = ["content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h));
        // A CR or LF would let a value inject headers.
        let breaks_line = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
        if framing || !is_token(name) || breaks_line(value) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // 1xx and 204 must not carry Content-Length; 304 says 0 (it has no body
    // whatever its representation's length).
    if !(status < 200 || status == 204) {
        match framing {
            BodyFraming::Length(n) => {
                out.extend_from_slice(b"Content-Length: ");
                push_decimal(out, if has_body(status) { n } else { 0 });
                out.extend_from_slice(b"\r\n");
            }
            BodyFraming::Chunked if has_body(status) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            }
            BodyFraming::Chunked | BodyFraming::Close => {}
        }
    }
    match connection {
        ConnHeader::None => {}
        ConnHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
        ConnHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk (size line, data, CRLF) of a chunked body; empty data
/// would end the body, so it writes nothing.
pub(super) fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    let mut size = data.len();
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[size % 16];
        size /= 16;
        if size == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and an empty trailer section.
pub(super) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends `n` in decimal without going through `fmt`.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(crate::digits::decimal(&mut digits, n, 1));
}

/// The reason phrase for a status code (RFC 9110 §15).
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fill` over a list of pieces, one per call, then end of stream.
    fn pieces<'a>(parts: &'a [&'a [u8]]) -> impl FnMut(&mut RecvBuf) -> Result<usize, ()> + 'a {
        let mut next = parts.iter();
        move |input| {
            match next.next() {
                Some(part) => input.read_from(&mut &part[..], part.len().max(1)),
                None => Ok(0),
            }
            .map_err(drop)
        }
    }

    fn decode(parts: &[&[u8]], rules: ChunkRules) -> Result<Vec<u8>, ChunkError<()>> {
        let mut input = RecvBuf::default();
        let mut fill = pieces(parts);
        let mut body = Vec::new();
        let _ = read_chunks(&mut input, &mut fill, rules, &mut |d| {
            body.extend_from_slice(d);
            ControlFlow::Continue(())
        })?;
        skip_trailers(&mut input, &mut fill, 64, 64)?;
        Ok(body)
    }

    const STRICT: ChunkRules = ChunkRules {
        max_line: 16,
        max_body: 20,
        strict: true,
    };
    const LENIENT: ChunkRules = ChunkRules {
        strict: false,
        ..STRICT
    };

    #[test]
    fn chunks_split_anywhere_decode_the_same() {
        let whole: &[u8] = b"5;x=y\r\nhello\r\n1\r\n \r\n5\nworld\n0\r\nT: v\r\n\r\n";
        assert_eq!(decode(&[whole], STRICT).unwrap(), b"hello world");
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(decode(&bytes, STRICT).unwrap(), b"hello world");
    }

    #[test]
    fn chunk_errors_by_kind() {
        let err = |parts: &[&[u8]], rules| decode(parts, rules).unwrap_err();
        assert!(matches!(err(&[b"zz\r\n"], STRICT), ChunkError::Malformed));
        assert!(matches!(err(&[b"+5\r\n"], STRICT), ChunkError::Malformed));
        assert!(matches!(
            err(&[b"3\r\nabcX"], STRICT),
            ChunkError::Malformed
        ));
        assert!(matches!(
            err(&[b"00000000000000000000"], STRICT),
            ChunkError::LineTooLong
        ));
        assert!(matches!(err(&[b"15\r\n"], STRICT), ChunkError::TooLarge));
        assert!(matches!(
            err(&[b"10\r\n0123456789abcdef\r\n5\r\n"], STRICT),
            ChunkError::TooLarge
        ));
        assert!(matches!(err(&[b"5\r\nhel"], STRICT), ChunkError::Closed));
        // The client takes a sign and any white space, as it always did.
        assert_eq!(
            decode(&[b"+2\x0b\r\nab\r\n0\r\n\r\n"], LENIENT).unwrap(),
            b"ab"
        );
    }

    #[test]
    fn sink_sees_data_as_it_arrives_and_can_stop() {
        let mut input = RecvBuf::default();
        let mut fill = pieces(&[b"a\r\n01234", b"56789\r\n", b"3\r\nabc\r\n0\r\n\r\n"]);
        let mut seen = Vec::new();
        let flow = read_chunks(&mut input, &mut fill, STRICT, &mut |d| {
            seen.push(d.to_vec());
            ControlFlow::Break(())
        })
        .unwrap();
        assert!(flow.is_break());
        assert_eq!(seen, vec![b"01234".to_vec()]);
    }

    #[test]
    fn fields_strict_for_requests_lenient_for_responses() {
        let strict = FieldRules {
            strict: true,
            max_fields: 2,
        };
        let lenient = FieldRules {
            strict: false,
            max_fields: usize::MAX,
        };
        let (start, rest) = split_head("GET / HTTP/1.1\r\nA: 1\r\nB:2 \r\n\r\n");
        assert_eq!(start, "GET / HTTP/1.1");
        assert_eq!(
            parse_fields(rest, strict).unwrap(),
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert_eq!(
            parse_fields("A: 1\nB: 2\nC: 3\n\n", strict),
            Err(FieldError::TooMany)
        );
        for bad in [" A: 1\r\n\r\n", "A B: 1\r\n\r\n", "A 1\r\n\r\n"] {
            assert_eq!(
                parse_fields(bad, strict),
                Err(FieldError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            parse_fields("Server : x\r\n\tY: z\r\n\r\n", lenient).unwrap(),
            vec![("Server".into(), "x".into()), ("Y".into(), "z".into())]
        );
        assert_eq!(
            parse_fields("no colon\r\n\r\n", lenient),
            Err(FieldError::Malformed)
        );
    }

    #[test]
    fn response_framing_follows_rfc_9112_6_3() {
        let h = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert_eq!(
            response_framing(200, &h("Transfer-Encoding", "gzip, chunked"), false),
            Ok(ResponseFraming::Chunked)
        );
        assert_eq!(
            response_framing(200, &h("content-length", " 12 "), false),
            Ok(ResponseFraming::Length(12))
        );
        assert_eq!(
            response_framing(200, &h("Content-Length", "x"), false),
            Err("malformed Content-Length")
        );
        assert_eq!(
            response_framing(200, &[], false),
            Ok(ResponseFraming::UntilClose)
        );
        for (status, head_only) in [(200, true), (204, false), (304, false), (101, false)] {
            assert_eq!(
                response_framing(status, &h("Content-Length", "5"), head_only),
                Ok(ResponseFraming::None)
            );
        }
    }
}
