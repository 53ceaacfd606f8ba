//! Label sets: `{name="value",...}` for series and exemplars.

use std::borrow::Cow;

use super::LabelRef;
use super::error::{Found, Reason};
use super::lex::{is_label_start, label_name_end, scan_quoted, skip_blanks, unescape_quoted};

/// An error at a byte offset of the body; the parser adds line and column.
pub(super) type Fail = (usize, Reason);

/// The error for "expected X" at `pos`.
pub(super) fn unexpected(body: &[u8], pos: usize, expected: &'static str) -> Fail {
    (
        pos,
        Reason::Unexpected {
            expected,
            found: Found::at(body, pos),
        },
    )
}

/// The body, plus its text when the whole body is valid UTF-8 (the common
/// case): then every slice between ASCII delimiters is text without a
/// per-slice check, which matters when a sample has a dozen short strings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Src<'a> {
    pub bytes: &'a [u8],
    text: Option<&'a str>,
}

impl<'a> Src<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            text: std::str::from_utf8(bytes).ok(),
        }
    }

    /// `bytes[start..end]` as text, or the offset of the first invalid byte.
    pub(super) fn str(self, start: usize, end: usize) -> Result<&'a str, usize> {
        if let Some(s) = self.text.and_then(|t| t.get(start..end)) {
            return Ok(s);
        }
        let bytes = self.bytes.get(start..end).unwrap_or_default();
        std::str::from_utf8(bytes).map_err(|e| start + e.valid_up_to())
    }

    /// A name the scanners accepted (ASCII), as text. The empty fallback is
    /// unreachable; it exists so this can never panic.
    pub(super) fn name(self, start: usize, end: usize) -> &'a str {
        self.str(start, end).unwrap_or_default()
    }
}

/// How a label set is read.
#[derive(Clone, Copy)]
pub(super) struct Mode {
    /// OpenMetrics: no blanks inside braces, commas required, no trailing comma.
    pub strict: bool,
    /// Exemplar label sets cannot carry a metric name.
    pub exemplar: bool,
    /// A standalone label set (no metric name outside the braces) may give
    /// the name as a `__name__` label.
    pub name_label: bool,
}

/// Reads the label set whose `{` is just before `pos` into `out` (cleared
/// first) and returns the offset after the closing `}`. A quoted string
/// followed by `,` or `}` is the metric name (UTF-8 names); it is stored in
/// `name`, which must not already be set.
pub(super) fn parse_label_set<'a>(
    src: Src<'a>,
    mut pos: usize,
    mode: Mode,
    out: &mut Vec<LabelRef<'a>>,
    name: &mut Option<Cow<'a, str>>,
) -> Result<usize, Fail> {
    let body = src.bytes;
    let blanks = |p: usize| if mode.strict { p } else { skip_blanks(body, p) };
    out.clear();
    pos = blanks(pos);
    if body.get(pos) == Some(&b'}') {
        return Ok(pos + 1);
    }
    loop {
        let name_pos = pos;
        let label_name = match body.get(pos) {
            Some(&b) if is_label_start(b) => {
                let end = label_name_end(body, pos);
                pos = end;
                Some(Cow::Borrowed(src.name(name_pos, end)))
            }
            Some(b'"') => {
                let (text, end) = quoted(src, pos, "quoted name")?;
                pos = blanks(end);
                if !mode.exemplar && matches!(body.get(pos), Some(b',' | b'}')) {
                    if name.is_some() {
                        return Err((name_pos, Reason::DuplicateMetricName));
                    }
                    *name = Some(text);
                    None
                } else {
                    Some(text)
                }
            }
            _ => return Err(unexpected(body, pos, "label name")),
        };
        if let Some(label_name) = label_name {
            pos = blanks(pos);
            if body.get(pos) != Some(&b'=') {
                return Err(unexpected(body, pos, "'=' after label name"));
            }
            pos = blanks(pos + 1);
            if body.get(pos) != Some(&b'"') {
                return Err(unexpected(body, pos, "'\"' starting the label value"));
            }
            let (value, end) = quoted(src, pos, "label value")?;
            // `__name__` would clash with the metric name the series already has (or lacks).
            if (label_name == "__name__" && !mode.name_label)
                || out.iter().any(|l| l.name == label_name)
            {
                return Err((
                    name_pos,
                    Reason::DuplicateLabel {
                        name: label_name.into_owned(),
                    },
                ));
            }
            out.push(LabelRef {
                name: label_name,
                value,
            });
            pos = blanks(end);
        }
        match body.get(pos) {
            Some(b'}') => return Ok(pos + 1),
            Some(b',') => {
                pos = blanks(pos + 1);
                if body.get(pos) == Some(&b'}') {
                    if mode.strict {
                        return Err(unexpected(body, pos, "label name after ','"));
                    }
                    return Ok(pos + 1);
                }
            }
            // Prometheus' text parser does not require commas between labels.
            _ if !mode.strict => {}
            _ => return Err(unexpected(body, pos, "',' or '}' after label")),
        }
    }
}

/// A quoted string at `pos`: its unescaped text and the offset after the closing quote.
fn quoted<'a>(src: Src<'a>, pos: usize, what: &'static str) -> Result<(Cow<'a, str>, usize), Fail> {
    let q = scan_quoted(src.bytes, pos).map_err(|at| unexpected(src.bytes, at, "closing '\"'"))?;
    let raw = src
        .str(q.start, q.end)
        .map_err(|at| (at, Reason::InvalidUtf8 { what }))?;
    Ok((unescape_quoted(raw, q.escaped), q.end + 1))
}
