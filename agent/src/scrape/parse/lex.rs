//! Byte-level scanning shared by both formats: names, quoted strings, escapes.
//!
//! Every function takes the body and a start offset and returns an end
//! offset, so callers keep one position and slice the body without copying.

use std::borrow::Cow;

/// `[a-zA-Z_:]`: first byte of a legacy metric name.
pub(super) fn is_metric_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

/// `[a-zA-Z0-9_:]`
fn is_metric_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// `[a-zA-Z_]`: first byte of a legacy label name.
pub(super) fn is_label_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// `[a-zA-Z0-9_]`
fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// End of the legacy metric name starting at `pos` (which must be a valid start byte).
pub(super) fn metric_name_end(body: &[u8], pos: usize) -> usize {
    pos + 1
        + body[pos + 1..]
            .iter()
            .position(|&b| !is_metric_char(b))
            .unwrap_or(body.len() - pos - 1)
}

/// End of the legacy label name starting at `pos` (which must be a valid start byte).
pub(super) fn label_name_end(body: &[u8], pos: usize) -> usize {
    pos + 1
        + body[pos + 1..]
            .iter()
            .position(|&b| !is_label_char(b))
            .unwrap_or(body.len() - pos - 1)
}

/// Offset of the first byte at or after `pos` that is not a space or tab.
pub(super) fn skip_blanks(body: &[u8], mut pos: usize) -> usize {
    while matches!(body.get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    pos
}

/// Offset of the next `\n` at or after `pos`, or the body length.
pub(super) fn line_end(body: &[u8], pos: usize) -> usize {
    body[pos..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(body.len(), |i| pos + i)
}

/// A quoted string found by [`scan_quoted`]: content offsets (without quotes).
#[derive(Debug, Clone, Copy)]
pub(super) struct Quoted {
    pub start: usize,
    pub end: usize,
    pub escaped: bool,
}

/// Scans `"..."` starting at the opening quote at `pos`. Backslash escapes
/// any byte except a newline. A raw newline or the end of the body before
/// the closing quote is an error, reported at the offending offset.
pub(super) fn scan_quoted(body: &[u8], pos: usize) -> Result<Quoted, usize> {
    let start = pos + 1;
    let mut i = start;
    let mut escaped = false;
    loop {
        // Tight search for the next byte that matters; most values hold none but the quote.
        let Some(off) = body
            .get(i..)
            .and_then(|rest| rest.iter().position(|&b| matches!(b, b'"' | b'\\' | b'\n')))
        else {
            return Err(body.len());
        };
        i += off;
        match body.get(i) {
            Some(b'"') => {
                return Ok(Quoted {
                    start,
                    end: i,
                    escaped,
                });
            }
            Some(b'\\') => {
                escaped = true;
                match body.get(i + 1) {
                    Some(b'\n') | None => return Err(i + 1),
                    Some(_) => i += 2,
                }
            }
            _ => return Err(i),
        }
    }
}

/// Undoes `\\`, `\"` and `\n` (as Prometheus does for label values and
/// quoted names); any other escape is kept as written.
pub(super) fn unescape_quoted(raw: &str, escaped: bool) -> Cow<'_, str> {
    if !escaped {
        return Cow::Borrowed(raw);
    }
    unescape(raw, true)
}

/// HELP text escapes: `\\` and `\n`, plus `\"` in OpenMetrics.
pub(super) fn unescape_help(raw: &str, quote: bool) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    unescape(raw, quote)
}

fn unescape(raw: &str, quote: bool) -> Cow<'_, str> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quote => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings() {
        /// Ok((content, escaped)) or Err(offset of the error).
        type Want = Result<(&'static str, bool), usize>;
        let cases: &[(&str, Want)] = &[
            (r#""""#, Ok(("", false))),
            (r#""abc" 1"#, Ok(("abc", false))),
            (r#""a\"b""#, Ok((r#"a\"b"#, true))),
            (r#""a\\""#, Ok((r"a\\", true))),
            ("\"a\0b\"", Ok(("a\0b", false))),
            ("\"a", Err(2)),
            ("\"a\nb\"", Err(2)),
            ("\"a\\\nb\"", Err(3)),
            ("\"a\\", Err(3)),
        ];
        for (input, want) in cases {
            let body = input.as_bytes();
            let got = scan_quoted(body, 0).map(|q| (&input[q.start..q.end], q.escaped));
            assert_eq!(got, *want, "{input:?}");
        }
    }

    #[test]
    fn escapes() {
        let cases: &[(&str, &str, &str)] = &[
            // (raw, as label value, as text-format HELP)
            ("plain", "plain", "plain"),
            (r"a\\b", r"a\b", r"a\b"),
            (r"a\nb", "a\nb", "a\nb"),
            (r#"a\"b"#, "a\"b", r#"a\"b"#),
            (r"a\zb", r"a\zb", r"a\zb"),
            (r"\\n", r"\n", r"\n"),
            (r"end\", r"end\", r"end\"),
        ];
        for (raw, label, help) in cases {
            assert_eq!(unescape_quoted(raw, true), *label, "label {raw}");
            assert_eq!(unescape_help(raw, false), *help, "help {raw}");
        }
        assert!(matches!(unescape_quoted("x", false), Cow::Borrowed("x")));
        assert_eq!(unescape_help(r#"q\"q"#, true), "q\"q");
    }

    #[test]
    fn names() {
        let body = b"a_b:c9{x";
        assert_eq!(metric_name_end(body, 0), 6);
        assert_eq!(label_name_end(b"a_b:c", 0), 3);
        assert_eq!(metric_name_end(b"abc", 0), 3);
        assert_eq!(skip_blanks(b" \t x", 0), 3);
        assert_eq!(line_end(b"ab\ncd", 0), 2);
        assert_eq!(line_end(b"ab", 1), 2);
    }
}
