//! Reading a response body under a size limit, decoding gzip on the fly.
//!
//! The limit applies to the decoded size and is checked while decoding, so a
//! gzip bomb stops at the limit instead of filling memory.

use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use flate2::write::MultiGzDecoder;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::error::HttpError;

/// Compressed input allowed beyond the decoded limit: gzip framing overhead on
/// incompressible data is a few bytes per 64 KiB block plus the header.
const GZIP_SLACK: u64 = 64 * 1024;

/// The `Content-Encoding`s we decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// No encoding (absent or `identity`).
    Identity,
    /// `gzip` (or the legacy `x-gzip`); concatenated members are decoded like Go's reader.
    Gzip,
}

impl Encoding {
    /// Reads the response's `Content-Encoding`.
    pub(crate) fn of(headers: &HeaderMap, target: &str) -> Result<Self, HttpError> {
        let Some(value) = headers.get(CONTENT_ENCODING) else {
            return Ok(Self::Identity);
        };
        let text = value.to_str().unwrap_or("").trim();
        if text.is_empty() || text.eq_ignore_ascii_case("identity") {
            Ok(Self::Identity)
        } else if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
            Ok(Self::Gzip)
        } else {
            Err(HttpError::Decode {
                target: target.to_owned(),
                encoding: String::from_utf8_lossy(value.as_bytes())
                    .chars()
                    .take(32)
                    .collect(),
                source: io::Error::new(io::ErrorKind::Unsupported, "unsupported content encoding"),
            })
        }
    }
}

/// Body buffers handed back after use, for the next response to fill.
///
/// A scrape body is read into one buffer and freed once ingested. Fresh
/// buffers are fresh pages: the kernel faulted in and zeroed every page a
/// body was copied into (5 % of the agent's CPU at 100 targets x 2000
/// series), since the allocator returns pages unused for 200 ms and a
/// target comes back once a second. Scrapes of a job rarely overlap, so a
/// few buffers serve them all.
#[derive(Debug, Default)]
pub(crate) struct BufferPool(Mutex<Vec<BytesMut>>);

impl BufferPool {
    /// Buffers kept at most.
    const KEEP: usize = 4;
    /// Larger buffers are freed, not kept: one huge body should not pin its
    /// memory for good.
    const LARGEST: usize = 8 << 20;

    /// An empty buffer with room for `hint` bytes.
    fn take(&self, hint: usize) -> BytesMut {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut buf = kept.unwrap_or_default();
        buf.reserve(hint);
        buf
    }

    /// Keeps `body`'s buffer for a later response, unless something else
    /// still holds the body, the buffer is too large, or enough are kept.
    pub(crate) fn give_back(&self, body: Bytes) {
        let Ok(mut buf) = body.try_into_mut() else {
            return;
        };
        if buf.capacity() > Self::LARGEST {
            return;
        }
        buf.clear();
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < Self::KEEP {
            kept.push(buf);
        }
    }
}

/// Collects the body into a buffer from `pool`, decoding `encoding`,
/// failing once the decoded size exceeds `max_body` (0 = unlimited).
pub(crate) async fn read(
    mut body: Incoming,
    headers: &HeaderMap,
    encoding: Encoding,
    max_body: u64,
    target: &str,
    pool: &BufferPool,
) -> Result<Bytes, HttpError> {
    let mut collector = Collector::new(headers, encoding, max_body, target, pool)?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| HttpError::transport(target, e))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        collector.push(&data)?;
    }
    collector.finish()
}

/// A response body being collected: counted against the limit as it comes,
/// decoded on the fly, into a buffer from the pool.
pub(crate) struct Collector<'a> {
    sink: Sink,
    raw_len: u64,
    raw_limit: u64,
    max_body: u64,
    target: &'a str,
}

impl<'a> Collector<'a> {
    /// Starts a body of a response with `headers`, failing at once when its
    /// declared length is over the limit.
    pub(crate) fn new(
        headers: &HeaderMap,
        encoding: Encoding,
        max_body: u64,
        target: &'a str,
        pool: &BufferPool,
    ) -> Result<Self, HttpError> {
        let limit = if max_body == 0 { u64::MAX } else { max_body };
        let raw_limit = match encoding {
            Encoding::Identity => limit,
            Encoding::Gzip => limit
                .saturating_add(limit / 1024)
                .saturating_add(GZIP_SLACK),
        };
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let collector = Self {
            sink: Sink::Raw(BytesMut::new()),
            raw_len: 0,
            raw_limit,
            max_body,
            target,
        };
        if declared.is_some_and(|len| len > raw_limit) {
            return Err(collector.too_large());
        }
        // Preallocate for the declared size, but never trust it beyond 16 MiB.
        let hint = declared.unwrap_or(0).min(limit).min(16 << 20);
        let hint = usize::try_from(hint).unwrap_or(0);
        let sink = match encoding {
            Encoding::Identity => Sink::Raw(pool.take(hint)),
            Encoding::Gzip => Sink::Gzip(Box::new(MultiGzDecoder::new(Limited {
                buf: Vec::with_capacity(hint),
                limit,
                exceeded: false,
            }))),
        };
        Ok(Self { sink, ..collector })
    }

    fn too_large(&self) -> HttpError {
        HttpError::BodyTooLarge {
            target: self.target.to_owned(),
            limit: self.max_body,
        }
    }

    /// Counts `n` more bytes of the body as received.
    fn count(&mut self, n: usize) -> Result<(), HttpError> {
        self.raw_len = self.raw_len.saturating_add(n as u64);
        if self.raw_len > self.raw_limit {
            return Err(self.too_large());
        }
        Ok(())
    }

    /// Adds the next piece of the body as received.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<(), HttpError> {
        self.count(data.len())?;
        match &mut self.sink {
            Sink::Raw(buf) => buf.extend_from_slice(data),
            Sink::Gzip(decoder) => {
                if let Err(source) = decoder.write_all(data) {
                    return Err(gzip_failure(
                        decoder.get_ref().exceeded,
                        source,
                        self.target,
                        self.max_body,
                    ));
                }
            }
        }
        Ok(())
    }

    /// For a body kept as received, the buffer itself, so the next piece can
    /// be read straight into it (then [`Collector::received`]); `None` when
    /// the body is decoded on the way.
    pub(crate) fn direct(&mut self) -> Option<&mut BytesMut> {
        match &mut self.sink {
            Sink::Raw(buf) => Some(buf),
            Sink::Gzip(_) => None,
        }
    }

    /// Counts `n` bytes read straight into [`Collector::direct`]'s buffer.
    pub(crate) fn received(&mut self, n: usize) -> Result<(), HttpError> {
        self.count(n)
    }

    /// The whole body, decoded.
    pub(crate) fn finish(self) -> Result<Bytes, HttpError> {
        match self.sink {
            Sink::Raw(buf) => Ok(buf.freeze()),
            // HEAD and 204/304 responses may carry the header without any body.
            Sink::Gzip(_) if self.raw_len == 0 => Ok(Bytes::new()),
            Sink::Gzip(mut decoder) => {
                if let Err(source) = decoder.try_finish() {
                    return Err(gzip_failure(
                        decoder.get_ref().exceeded,
                        source,
                        self.target,
                        self.max_body,
                    ));
                }
                let limited = decoder.get_mut();
                Ok(Bytes::from(std::mem::take(&mut limited.buf)))
            }
        }
    }
}

fn gzip_failure(exceeded: bool, source: io::Error, target: &str, limit: u64) -> HttpError {
    if exceeded {
        HttpError::BodyTooLarge {
            target: target.to_owned(),
            limit,
        }
    } else {
        HttpError::Decode {
            target: target.to_owned(),
            encoding: "gzip".into(),
            source,
        }
    }
}

enum Sink {
    Raw(BytesMut),
    // Boxed: the decoder state is large and lives once per gzip response.
    Gzip(Box<MultiGzDecoder<Limited>>),
}

/// The decoder's output: refuses to grow past `limit` and remembers that it did.
struct Limited {
    buf: Vec<u8>,
    limit: u64,
    exceeded: bool,
}

impl Write for Limited {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if (self.buf.len() as u64).saturating_add(data.len() as u64) > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("decoded body exceeds the limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_given_back_is_the_next_buffer() {
        let pool = BufferPool::default();
        let mut buf = pool.take(1000);
        buf.extend_from_slice(b"body");
        let at = buf.as_ptr();
        let body = buf.freeze();
        pool.give_back(body);
        let again = pool.take(10);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), at, "the same allocation");
        assert!(again.capacity() >= 1000);
    }

    #[test]
    fn a_shared_or_huge_body_is_not_kept_and_the_pool_is_bounded() {
        let pool = BufferPool::default();
        let body = Bytes::from(vec![1u8; 100]);
        let clone = body.clone();
        pool.give_back(body);
        assert!(pool.0.lock().unwrap().is_empty(), "still held elsewhere");
        drop(clone);
        pool.give_back(Bytes::from(vec![0u8; BufferPool::LARGEST + 1]));
        assert!(pool.0.lock().unwrap().is_empty(), "too large to keep");
        for _ in 0..BufferPool::KEEP + 2 {
            pool.give_back(Bytes::from(vec![0u8; 64]));
        }
        assert_eq!(pool.0.lock().unwrap().len(), BufferPool::KEEP);
    }
}
