//! The end of a sample line: value, timestamp and (OpenMetrics) exemplar.

use super::LabelRef;
use super::error::{Reason, lossy};
use super::labels::{Fail, Mode, Src, parse_label_set, unexpected};
use super::lex::skip_blanks;
use super::number::{parse_float, parse_om_timestamp, parse_text_timestamp};

/// What follows a sample's value.
pub(super) struct Tail {
    pub timestamp_ms: Option<i64>,
    /// Exemplar value and timestamp; its labels are in the caller's buffer.
    pub exemplar: Option<(f64, Option<i64>)>,
    /// Offset of the line end (`\n` or the end of the body).
    pub end: usize,
}

fn at_line_end(body: &[u8], pos: usize) -> bool {
    matches!(body.get(pos), None | Some(b'\n'))
}

/// End of a value/timestamp token: up to a space or the line end (and a tab in text format).
fn token_end(body: &[u8], pos: usize, strict: bool) -> usize {
    pos + body[pos..]
        .iter()
        .position(|&b| b == b' ' || b == b'\n' || (!strict && b == b'\t'))
        .unwrap_or(body.len() - pos)
}

/// The value token at `pos`: its number and where it ends.
pub(super) fn value(body: &[u8], pos: usize, strict: bool) -> Result<(f64, usize), Fail> {
    let end = token_end(body, pos, strict);
    if end == pos {
        return Err(unexpected(body, pos, "value"));
    }
    let token = &body[pos..end];
    let v = parse_float(token).ok_or_else(|| (pos, Reason::InvalidValue { text: lossy(token) }))?;
    Ok((v, end))
}

/// OpenMetrics timestamp token at `pos`; returns milliseconds and the token end.
fn om_timestamp(body: &[u8], pos: usize) -> Result<(i64, usize), Fail> {
    let end = token_end(body, pos, true);
    if end == pos {
        return Err(unexpected(body, pos, "timestamp"));
    }
    let token = &body[pos..end];
    let ts = parse_om_timestamp(token)
        .ok_or_else(|| (pos, Reason::InvalidTimestamp { text: lossy(token) }))?;
    Ok((ts, end))
}

/// Text format after the value: `[blanks integer-ms][blanks]` then the line end.
pub(super) fn text_tail(body: &[u8], pos: usize) -> Result<Tail, Fail> {
    let p = skip_blanks(body, pos);
    if at_line_end(body, p) {
        return Ok(Tail {
            timestamp_ms: None,
            exemplar: None,
            end: p,
        });
    }
    let digits_end = p + body[p..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(body.len() - p);
    if digits_end == p {
        return Err(unexpected(body, p, "timestamp or end of line"));
    }
    let token = &body[p..digits_end];
    let ts = parse_text_timestamp(token)
        .ok_or_else(|| (p, Reason::InvalidTimestamp { text: lossy(token) }))?;
    let end = skip_blanks(body, digits_end);
    if !at_line_end(body, end) {
        return Err(unexpected(body, end, "end of line after the timestamp"));
    }
    Ok(Tail {
        timestamp_ms: Some(ts),
        exemplar: None,
        end,
    })
}

/// OpenMetrics after the value: `[ timestamp][ # {labels} value[ timestamp]]\n`,
/// single spaces only. Exemplar labels go to `exemplar_labels`.
pub(super) fn om_tail<'a>(
    src: Src<'a>,
    mut pos: usize,
    exemplar_labels: &mut Vec<LabelRef<'a>>,
) -> Result<Tail, Fail> {
    let body = src.bytes;
    let mut tail = Tail {
        timestamp_ms: None,
        exemplar: None,
        end: pos,
    };
    if at_line_end(body, pos) {
        return Ok(tail);
    }
    pos += 1; // the value token ends at a space or the line end
    if !body[pos..].starts_with(b"# ") {
        let (ts, end) = om_timestamp(body, pos)?;
        tail.timestamp_ms = Some(ts);
        tail.end = end;
        if at_line_end(body, end) {
            return Ok(tail);
        }
        pos = end + 1;
    }
    if !body[pos..].starts_with(b"# {") {
        return Err(unexpected(body, pos, "\"# {\" starting an exemplar"));
    }
    let mode = Mode {
        strict: true,
        exemplar: true,
        name_label: false,
    };
    pos = parse_label_set(src, pos + 3, mode, exemplar_labels, &mut None)?;
    if body.get(pos) != Some(&b' ') {
        return Err(unexpected(body, pos, "' ' before the exemplar value"));
    }
    let (value, mut end) = self::value(body, pos + 1, true)?;
    let mut ex_ts = None;
    if !at_line_end(body, end) {
        let (ts, ts_end) = om_timestamp(body, end + 1)?;
        ex_ts = Some(ts);
        end = ts_end;
        if !at_line_end(body, end) {
            return Err(unexpected(body, end, "end of line after the exemplar"));
        }
    }
    tail.exemplar = Some((value, ex_ts));
    tail.end = end;
    Ok(tail)
}
