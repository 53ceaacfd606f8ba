//! Reading a response body under a size limit, decoding gzip on the fly.
//!
//! The limit applies to the decoded size and is checked while decoding, so a
//! gzip bomb stops at the limit instead of filling memory.

use std::io::{self, Write};

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

/// Collects the body, decoding `encoding`, failing once the decoded size
/// exceeds `max_body` (0 = unlimited).
pub(crate) async fn read(
    mut body: Incoming,
    headers: &HeaderMap,
    encoding: Encoding,
    max_body: u64,
    target: &str,
) -> Result<Bytes, HttpError> {
    let too_large = || HttpError::BodyTooLarge {
        target: target.to_owned(),
        limit: max_body,
    };
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
    if declared.is_some_and(|len| len > raw_limit) {
        return Err(too_large());
    }
    // Preallocate for the declared size, but never trust it beyond 16 MiB.
    let hint = declared.unwrap_or(0).min(limit).min(16 << 20);
    let hint = usize::try_from(hint).unwrap_or(0);
    let mut sink = match encoding {
        Encoding::Identity => Sink::Raw(BytesMut::with_capacity(hint)),
        Encoding::Gzip => Sink::Gzip(Box::new(MultiGzDecoder::new(Limited {
            buf: Vec::with_capacity(hint),
            limit,
            exceeded: false,
        }))),
    };
    let mut raw_len: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| HttpError::transport(target, e))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        raw_len = raw_len.saturating_add(data.len() as u64);
        if raw_len > raw_limit {
            return Err(too_large());
        }
        match &mut sink {
            Sink::Raw(buf) => buf.extend_from_slice(&data),
            Sink::Gzip(decoder) => {
                if let Err(source) = decoder.write_all(&data) {
                    return Err(gzip_failure(
                        decoder.get_ref().exceeded,
                        source,
                        target,
                        max_body,
                    ));
                }
            }
        }
    }
    match sink {
        Sink::Raw(buf) => Ok(buf.freeze()),
        // HEAD and 204/304 responses may carry the header without any body.
        Sink::Gzip(_) if raw_len == 0 => Ok(Bytes::new()),
        Sink::Gzip(mut decoder) => {
            if let Err(source) = decoder.try_finish() {
                return Err(gzip_failure(
                    decoder.get_ref().exceeded,
                    source,
                    target,
                    max_body,
                ));
            }
            let limited = decoder.get_mut();
            Ok(Bytes::from(std::mem::take(&mut limited.buf)))
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
