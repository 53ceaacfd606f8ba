//! GETs over an HTTP/1.1 connection the fetching task owns, with the body
//! read from the socket straight into its buffer.
//!
//! hyper reads a response into a buffer of its own (up to 64 KiB kept per
//! connection, fresh allocations once its chunks are handed out), passes each
//! chunk through a channel, and the body is then copied once more into the
//! buffer the scrape parses. For a scrape that is one request and one
//! response, so this reader does only that: it writes the request, parses the
//! head with `httparse` (hyper's own parser) and reads a `Content-Length`,
//! chunked or read-to-close body into the [`Collector`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use super::body::Collector;
use super::error::ProtocolError;
use super::stream::Stream;

/// Largest response head (status line and headers) accepted: Go's default
/// (`http.Transport.MaxResponseHeaderBytes`), as Prometheus scrapes with it.
const MAX_HEAD: usize = 1 << 20;
/// Most headers in a response head.
const MAX_HEADERS: usize = 100;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Most bytes read at a time straight into a body's buffer.
const READ_SIZE: usize = 64 * 1024;
/// Most bytes read at a time into the connection's own buffer (gzip bodies,
/// framing), which it keeps while idle.
const SCRATCH_SIZE: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Reading or writing the connection failed (a clean close included).
    Io(io::Error),
    /// The server broke HTTP/1.1 framing.
    Protocol(ProtocolError),
    /// The body could not be kept (over the limit, bad gzip).
    Body(super::HttpError),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

fn protocol(what: &'static str) -> Failure {
    Failure::Protocol(ProtocolError(what))
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed before the response was complete",
    )
}

/// A response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    framing: Framing,
    /// The connection may carry another request after this response.
    keep_alive: bool,
}

/// How the body's end is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// One HTTP/1.1 connection.
pub(crate) struct Connection {
    io: TokioIo<Stream>,
    /// Bytes read but not yet consumed: the head, chunk framing, and any body
    /// bytes that arrived with them.
    buf: BytesMut,
    /// The request being written, reused.
    request: Vec<u8>,
}

impl Connection {
    pub(crate) fn new(stream: Stream) -> Self {
        Self {
            io: TokioIo::new(stream),
            buf: BytesMut::new(),
            request: Vec::new(),
        }
    }

    /// False when the server closed the connection (or sent something
    /// unasked) while it sat idle: checked without waiting, before reuse.
    pub(crate) fn is_idle_and_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        let mut probe = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut probe),
            Poll::Pending
        )
    }

    /// Writes `GET target` with `headers`.
    pub(crate) async fn send_get(
        &mut self,
        target: &str,
        headers: &HeaderMap,
    ) -> Result<(), Failure> {
        let req = &mut self.request;
        req.clear();
        req.extend_from_slice(b"GET ");
        req.extend_from_slice(target.as_bytes());
        req.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in headers {
            req.extend_from_slice(name.as_str().as_bytes());
            req.extend_from_slice(b": ");
            req.extend_from_slice(value.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        self.io.write_all(req).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Reads the response head, skipping interim (1xx) responses.
    pub(crate) async fn read_head(&mut self) -> Result<Head, Failure> {
        loop {
            let head = loop {
                if let Some(head) = self.parse_head()? {
                    break head;
                }
                if self.buf.len() >= MAX_HEAD {
                    return Err(protocol("response head too large"));
                }
                self.fill().await?;
            };
            match head.status.as_u16() {
                101 => return Err(protocol("unexpected protocol upgrade")),
                100..=199 => continue,
                _ => return Ok(head),
            }
        }
    }

    /// Reads more into `buf`; an error at end of stream.
    async fn fill(&mut self) -> Result<(), Failure> {
        self.buf.reserve(8 * 1024);
        if self.io.read_buf(&mut self.buf).await? == 0 {
            return Err(Failure::Io(closed()));
        }
        Ok(())
    }

    /// True when part of a response arrived (so a failure is not the
    /// server having closed an idle connection).
    pub(crate) fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Parses a complete head off the front of `buf`; `None` if incomplete.
    fn parse_head(&mut self) -> Result<Option<Head>, Failure> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        let len = match parsed.parse(&self.buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(protocol("too many headers")),
            Err(_) => return Err(protocol("malformed response head")),
        };
        let code = parsed.code.ok_or_else(|| protocol("no status code"))?;
        let status = StatusCode::from_u16(code).map_err(|_| protocol("invalid status code"))?;
        let version = if parsed.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        let mut headers = HeaderMap::with_capacity(parsed.headers.len());
        for h in parsed.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| protocol("invalid header name"))?;
            let value =
                HeaderValue::from_bytes(h.value).map_err(|_| protocol("invalid header value"))?;
            headers.append(name, value);
        }
        self.buf.advance(len);
        let (framing, exact) = framing(status, &headers)?;
        let keep_alive = exact && version == Version::HTTP_11 && !wants_close(&headers);
        Ok(Some(Head {
            status,
            version,
            headers,
            framing,
            keep_alive,
        }))
    }

    /// Reads the body of the response `head` into `body`. Returns whether
    /// the connection can carry another request.
    pub(crate) async fn read_body(
        &mut self,
        head: &Head,
        body: &mut Collector<'_>,
    ) -> Result<bool, Failure> {
        match head.framing {
            Framing::Empty => {}
            Framing::Length(len) => self.read_exact(len, body).await?,
            Framing::Chunked => self.read_chunked(body).await?,
            Framing::UntilClose => {
                self.take_buffered(u64::MAX, body)?;
                while self.read_more(u64::MAX, body).await? > 0 {}
                return Ok(false);
            }
        }
        // A huge head's buffer is not kept for the connection's life.
        if self.buf.capacity() > 4 * SCRATCH_SIZE && self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        // Bytes past the response were not asked for: the connection's
        // framing is lost, so it is not reused.
        Ok(head.keep_alive && self.buf.is_empty())
    }

    /// Moves up to `max` buffered bytes into the body; returns how many.
    fn take_buffered(&mut self, max: u64, body: &mut Collector<'_>) -> Result<u64, Failure> {
        let n = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        body.push(&self.buf[..n]).map_err(Failure::Body)?;
        self.buf.advance(n);
        Ok(n as u64)
    }

    /// Reads up to `max` more body bytes from the socket, straight into the
    /// body's buffer when it is kept as received. Returns 0 at end of stream.
    async fn read_more(&mut self, max: u64, body: &mut Collector<'_>) -> Result<usize, Failure> {
        let want = usize::try_from(max).unwrap_or(usize::MAX).min(READ_SIZE);
        if let Some(direct) = body.direct() {
            direct.reserve(want);
            let n = (&mut self.io).take(want as u64).read_buf(direct).await?;
            body.received(n).map_err(Failure::Body)?;
            Ok(n)
        } else {
            let want = want.min(SCRATCH_SIZE);
            self.buf.reserve(want);
            let n = (&mut self.io)
                .take(want as u64)
                .read_buf(&mut self.buf)
                .await?;
            self.take_buffered(n as u64, body)?;
            Ok(n)
        }
    }

    async fn read_exact(&mut self, len: u64, body: &mut Collector<'_>) -> Result<(), Failure> {
        let mut left = len - self.take_buffered(len, body)?;
        while left > 0 {
            match self.read_more(left, body).await? {
                0 => return Err(Failure::Io(closed())),
                n => left -= n as u64,
            }
        }
        Ok(())
    }

    async fn read_chunked(&mut self, body: &mut Collector<'_>) -> Result<(), Failure> {
        loop {
            let line = self.read_line().await?;
            let size = chunk_size(&line)?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(());
            }
            self.read_exact(size, body).await?;
            if !self.read_line().await?.is_empty() {
                return Err(protocol("chunk data longer than its size"));
            }
        }
    }

    /// The next line (without its CRLF), read off `buf`.
    async fn read_line(&mut self) -> Result<BytesMut, Failure> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line = self.buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(protocol("chunk framing line too long"));
            }
            self.fill().await?;
        }
    }
}

/// The body framing of a response (RFC 9112 §6.3), and whether it is exact
/// enough for the connection to be reused.
fn framing(status: StatusCode, headers: &HeaderMap) -> Result<(Framing, bool), Failure> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Empty, true));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        let chunked_last = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        // A Content-Length beside it is ignored, and the connection is not
        // trusted with another request (a request-smuggling precaution).
        let exact = chunked_last && !headers.contains_key(CONTENT_LENGTH);
        let framing = if chunked_last {
            Framing::Chunked
        } else {
            Framing::UntilClose
        };
        return Ok((framing, exact));
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.to_str().unwrap_or("x").split(',') {
            let n: u64 = part
                .trim()
                .parse()
                .map_err(|_| protocol("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(protocol("conflicting content-length values"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => (Framing::Empty, true),
        Some(n) => (Framing::Length(n), true),
        None => (Framing::UntilClose, false),
    })
}

/// True when the response says the connection closes after it.
fn wants_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
        })
    })
}

/// The size of a chunk from its size line (extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Result<u64, Failure> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits)
        .map_err(|_| protocol("invalid chunk size"))?
        .trim_matches([' ', '\t']);
    if digits.is_empty() || digits.len() > 15 {
        return Err(protocol("invalid chunk size"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| protocol("invalid chunk size"))
}
