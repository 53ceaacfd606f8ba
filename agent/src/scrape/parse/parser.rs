//! The line-by-line parser behind [`Parser::next_entry`].

use std::borrow::Cow;

use super::error::{ParseError, Reason, lossy};
use super::family::{Families, Meta, MetaValue};
use super::group::{Groups, Point};
use super::labels::{Fail, Mode, Src, parse_label_set, unexpected};
use super::lex::{
    is_metric_start, line_end, metric_name_end, scan_quoted, skip_blanks, unescape_help,
};
use super::rules::{self, SampleView};
use super::tail::{self, Tail};
use super::{Entry, Exemplar, Format, LabelRef, SampleEntry, SeriesKey};
use crate::model::MetricType;

/// `# TYPE` values of text format 0.0.4.
const TEXT_TYPES: &[(&[u8], MetricType)] = &[
    (b"counter", MetricType::Counter),
    (b"gauge", MetricType::Gauge),
    (b"histogram", MetricType::Histogram),
    (b"summary", MetricType::Summary),
    (b"untyped", MetricType::Unknown),
];

/// `# TYPE` values of OpenMetrics 1.0.
const OM_TYPES: &[(&[u8], MetricType)] = &[
    (b"counter", MetricType::Counter),
    (b"gauge", MetricType::Gauge),
    (b"histogram", MetricType::Histogram),
    (b"gaugehistogram", MetricType::GaugeHistogram),
    (b"summary", MetricType::Summary),
    (b"info", MetricType::Info),
    (b"stateset", MetricType::StateSet),
    (b"unknown", MetricType::Unknown),
];

/// A pull parser over one exposition body. Entries borrow the body and the
/// parser's scratch buffers, so the common sample costs no allocation.
#[derive(Debug)]
pub struct Parser<'a> {
    body: &'a [u8],
    src: Src<'a>,
    format: Format,
    pos: usize,
    /// 1-based number of the line `pos` is on, and where that line starts.
    line: usize,
    line_start: usize,
    finished: bool,
    labels: Vec<LabelRef<'a>>,
    exemplar_labels: Vec<LabelRef<'a>>,
    families: Families<'a>,
    groups: Groups<'a>,
    samples: usize,
}

/// One parsed line that does not borrow the parser (see `next_entry`).
enum Line<'a> {
    Help(&'a str, Cow<'a, str>),
    Type(&'a str, MetricType),
    Unit(&'a str, &'a str),
    Sample(SampleLine<'a>),
}

struct SampleLine<'a> {
    series_text: &'a [u8],
    name: Cow<'a, str>,
    name_len: usize,
    labels_parsed: bool,
    value: f64,
    timestamp_ms: Option<i64>,
    exemplar: Option<(f64, Option<i64>)>,
    metric_type: MetricType,
}

impl<'a> Parser<'a> {
    /// A parser for `body` in `format`.
    pub fn new(body: &'a [u8], format: Format) -> Self {
        Self {
            body,
            src: Src::new(body),
            format,
            pos: 0,
            line: 1,
            line_start: 0,
            finished: false,
            labels: Vec::with_capacity(16),
            exemplar_labels: Vec::new(),
            families: Families::default(),
            groups: Groups::default(),
            samples: 0,
        }
    }

    /// The next HELP/TYPE/UNIT/sample entry, `Ok(None)` at the end, or the
    /// first error. After an error or the end, every call returns `Ok(None)`.
    ///
    /// Lending iteration: the entry borrows the body (`'a`) and the parser's
    /// reusable scratch buffers (`'_`), so it must be dropped before the next call.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'a, '_>>, ParseError> {
        self.next_entry_expecting(None)
    }

    /// [`Self::next_entry`] for a caller that expects the next sample line
    /// to start with the series text of `known`, which an earlier parse of
    /// the same target accepted. When it does (text format, a plain metric
    /// name first), its label set is not parsed again: the entry's
    /// [`SampleEntry::labels_parsed`] is false and its `labels` are empty.
    /// Identical bytes parse identically, so nothing is validated less.
    pub fn next_entry_expecting(
        &mut self,
        known: Option<SeriesKey>,
    ) -> Result<Option<Entry<'a, '_>>, ParseError> {
        let line = match self.next_line(known) {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(None),
            Err((offset, reason)) => {
                self.finished = true;
                let column = offset.saturating_sub(self.line_start) + 1;
                return Err(ParseError::new(self.line, column, reason));
            }
        };
        Ok(Some(match line {
            Line::Help(family, help) => Entry::Help { family, help },
            Line::Type(family, metric_type) => Entry::Type {
                family,
                metric_type,
            },
            Line::Unit(family, unit) => Entry::Unit { family, unit },
            Line::Sample(s) => Entry::Sample(SampleEntry {
                series_text: s.series_text,
                name: s.name,
                name_len: s.name_len,
                labels: &self.labels,
                labels_parsed: s.labels_parsed,
                value: s.value,
                timestamp_ms: s.timestamp_ms,
                exemplar: s.exemplar.map(|(value, timestamp_ms)| Exemplar {
                    labels: &self.exemplar_labels,
                    value,
                    timestamp_ms,
                }),
                metric_type: s.metric_type,
            }),
        }))
    }

    /// Samples returned so far.
    pub(super) fn samples(&self) -> usize {
        self.samples
    }

    /// Distinct metric families seen so far.
    pub(super) fn families(&self) -> usize {
        self.families.count()
    }

    fn strict(&self) -> bool {
        self.format == Format::OpenMetrics
    }

    /// Moves past the line ending at `end` (a `\n` or the end of the body).
    fn advance_line(&mut self, end: usize) {
        if end < self.body.len() {
            self.pos = end + 1;
            self.line += 1;
            self.line_start = self.pos;
        } else {
            self.pos = self.body.len();
        }
    }

    fn next_line(&mut self, known: Option<SeriesKey>) -> Result<Option<Line<'a>>, Fail> {
        let body = self.body;
        loop {
            if self.finished {
                return Ok(None);
            }
            let Some(&first) = body.get(self.pos) else {
                self.finished = true;
                if self.strict() {
                    return Err((self.pos, Reason::MissingEof));
                }
                return Ok(None);
            };
            match first {
                b'#' => {
                    let line = if self.strict() {
                        self.om_comment()?
                    } else {
                        self.text_comment()?
                    };
                    if line.is_some() {
                        return Ok(line);
                    }
                }
                b'\n' if self.strict() => return Err((self.pos, Reason::BlankLine)),
                b'\n' => self.advance_line(self.pos),
                // Prometheus' text lexer skips blanks anywhere, including at line start.
                b' ' | b'\t' if !self.strict() => {
                    let p = skip_blanks(body, self.pos);
                    match body.get(p) {
                        None | Some(b'\n') => self.advance_line(p),
                        Some(_) => self.pos = p,
                    }
                }
                _ => return self.sample_line(known).map(|s| Some(Line::Sample(s))),
            }
        }
    }

    /// A text-format comment: `# HELP`/`# TYPE` lines are metadata, anything else is ignored.
    fn text_comment(&mut self) -> Result<Option<Line<'a>>, Fail> {
        let body = self.body;
        let end = line_end(body, self.pos);
        let after_hash = self.pos + 1;
        let keyword = skip_blanks(body, after_hash);
        let meta = match body.get(keyword..keyword + 4) {
            _ if keyword == after_hash => None,
            Some(b"HELP") => Some(Meta::Help),
            Some(b"TYPE") => Some(Meta::Type),
            _ => None,
        };
        let Some(meta) = meta.filter(|_| matches!(body.get(keyword + 4), Some(b' ' | b'\t')))
        else {
            self.advance_line(end);
            return Ok(None);
        };
        let name_pos = skip_blanks(body, keyword + 4);
        let (family, name_end) = meta_name(self.src, name_pos, meta)?;
        let text_start = match body.get(name_end) {
            Some(b' ' | b'\t') => name_end + 1,
            Some(b'\n') | None => name_end,
            Some(_) => return Err(unexpected(body, name_end, "blank after metric name")),
        };
        let line = self.metadata(meta, family, name_pos, text_start, end)?;
        self.advance_line(end);
        Ok(Some(line))
    }

    /// An OpenMetrics comment: exactly `# HELP `, `# TYPE `, `# UNIT ` or `# EOF`.
    fn om_comment(&mut self) -> Result<Option<Line<'a>>, Fail> {
        let body = self.body;
        let start = self.pos;
        let end = line_end(body, start);
        let line = &body[start..end];
        if line == b"# EOF" {
            if end + 1 < body.len() {
                self.advance_line(end);
                return Err((self.pos, Reason::TextAfterEof));
            }
            self.groups
                .finish()
                .map_err(|(family, rule)| self.type_rule(start, family, rule))?;
            self.finished = true;
            return Ok(None);
        }
        if line.starts_with(b"# EOF") {
            return Err((start + 5, Reason::TextAfterEof));
        }
        let meta = match line.get(..7) {
            Some(b"# HELP ") => Meta::Help,
            Some(b"# TYPE ") => Meta::Type,
            Some(b"# UNIT ") => Meta::Unit,
            _ => return Err((start, Reason::InvalidComment)),
        };
        let name_pos = start + 7;
        let (family, name_end) = meta_name(self.src, name_pos, meta)?;
        if body.get(name_end) != Some(&b' ') {
            return Err(unexpected(body, name_end, "' ' after metric name"));
        }
        let line = self.metadata(meta, family, name_pos, name_end + 1, end)?;
        self.advance_line(end);
        Ok(Some(line))
    }

    /// The text of a metadata line (`text_start..end`), checked and recorded.
    fn metadata(
        &mut self,
        meta: Meta,
        family: &'a str,
        name_pos: usize,
        text_start: usize,
        end: usize,
    ) -> Result<Line<'a>, Fail> {
        let raw = &self.body[text_start..end];
        let strict = self.strict();
        let (line, value) = match meta {
            Meta::Help => {
                let text = self
                    .src
                    .str(text_start, end)
                    .map_err(|at| (at, Reason::InvalidUtf8 { what: "HELP text" }))?;
                (
                    Line::Help(family, unescape_help(text, strict)),
                    MetaValue::Help,
                )
            }
            Meta::Type => {
                let (types, text) = if strict {
                    (OM_TYPES, raw)
                } else {
                    (TEXT_TYPES, raw.trim_ascii())
                };
                let Some(&(_, t)) = types.iter().find(|(name, _)| *name == text) else {
                    return Err((text_start, Reason::InvalidType { text: lossy(raw) }));
                };
                (Line::Type(family, t), MetaValue::Type(t))
            }
            Meta::Unit => {
                let unit = self
                    .src
                    .str(text_start, end)
                    .map_err(|at| (at, Reason::InvalidUtf8 { what: "UNIT" }))?;
                (Line::Unit(family, unit), MetaValue::Unit(unit))
            }
        };
        self.families
            .metadata(meta, family, value, strict)
            .map_err(|reason| (name_pos, reason))?;
        if strict {
            let index = self.families.current_index();
            self.groups
                .metadata(index)
                .map_err(|(family, rule)| self.type_rule(name_pos, family, rule))?;
        }
        Ok(line)
    }

    /// A sample line: series, value, optional timestamp, optional exemplar (OpenMetrics).
    fn sample_line(&mut self, known: Option<SeriesKey>) -> Result<SampleLine<'a>, Fail> {
        let body = self.body;
        let strict = self.strict();
        let start = self.pos;
        let mut name: Option<Cow<'a, str>> = None;
        let mut pos = start;
        let mut labels_parsed = true;
        // The metric name at the start of the series text (none before a '{').
        let mut name_len = 0;
        if let Some((end, known_name_len)) = self.known_series(known) {
            // The series text is one this target sent before: skip its labels.
            name_len = known_name_len;
            name = Some(Cow::Borrowed(self.src.name(start, start + name_len)));
            self.labels.clear();
            labels_parsed = false;
            pos = end;
        } else if body.get(pos).copied().is_some_and(is_metric_start) {
            pos = metric_name_end(body, pos);
            name_len = pos - start;
            name = Some(Cow::Borrowed(self.src.name(start, pos)));
        } else if body.get(pos) != Some(&b'{') {
            return Err(unexpected(body, pos, "metric name or '{'"));
        }
        if labels_parsed {
            let brace = if strict { pos } else { skip_blanks(body, pos) };
            if body.get(brace) == Some(&b'{') {
                let mode = Mode {
                    strict,
                    exemplar: false,
                    name_label: false,
                };
                pos = parse_label_set(self.src, brace + 1, mode, &mut self.labels, &mut name)?;
            } else {
                self.labels.clear();
            }
        }
        let series_text = &body[start..pos];
        let Some(name) = name else {
            return Err((start, Reason::MissingMetricName));
        };

        pos = self.separator(pos, "' ' before the value")?;
        let (value, value_end) = tail::value(body, pos, strict)?;
        let tail = if strict {
            tail::om_tail(self.src, value_end, &mut self.exemplar_labels)?
        } else {
            tail::text_tail(body, value_end)?
        };
        let Tail {
            timestamp_ms,
            exemplar,
            end,
        } = tail;

        let (metric_type, role) = self.families.sample(&name);
        if strict {
            let view = SampleView {
                metric_type,
                role,
                labels: &self.labels,
                value,
                exemplar: exemplar.map(|_| self.exemplar_labels.as_slice()),
            };
            let family = self.families.current_index();
            rules::check(&view).map_err(|rule| self.type_rule(start, family, rule))?;
            let point = Point {
                family,
                metric_type,
                role,
                labels: &self.labels,
                value,
                series_text,
                timestamp_ms,
            };
            self.groups
                .sample(&point)
                .map_err(|(family, rule)| self.type_rule(start, family, rule))?;
        }
        self.samples += 1;
        self.advance_line(end);
        Ok(SampleLine {
            series_text,
            name,
            name_len,
            labels_parsed,
            value,
            timestamp_ms,
            exemplar,
            metric_type,
        })
    }

    /// Where the series text ends, and how long its metric name is, when
    /// the line at `pos` starts with the text of `known` followed by a blank
    /// (so it is the whole series text).
    /// Text format only, and only for a series that starts with a plain
    /// metric name (OpenMetrics checks need the labels; a name inside the
    /// braces needs unquoting).
    fn known_series(&self, known: Option<SeriesKey>) -> Option<(usize, usize)> {
        let known = known.filter(|k| !k.is_empty())?;
        if self.strict()
            || !self
                .body
                .get(self.pos)
                .copied()
                .is_some_and(is_metric_start)
        {
            return None;
        }
        let end = self.pos + known.len();
        let text = self.body.get(self.pos..end)?;
        (matches!(self.body.get(end), Some(b' ' | b'\t')) && known.is_key_of(text))
            .then_some((end, known.name_len()))
    }

    fn type_rule(&self, pos: usize, family: usize, rule: &'static str) -> Fail {
        let family = self.families.name(family).to_owned();
        (pos, Reason::TypeRule { family, rule })
    }

    /// The blank(s) before a value: one space in OpenMetrics, spaces/tabs in text.
    fn separator(&self, pos: usize, expected: &'static str) -> Result<usize, Fail> {
        let body = self.body;
        if self.strict() {
            if body.get(pos) == Some(&b' ') {
                return Ok(pos + 1);
            }
        } else {
            let p = skip_blanks(body, pos);
            // Prometheus' text lexer needs no blank between `}` and the value.
            if p > pos || (pos > 0 && body.get(pos - 1) == Some(&b'}')) {
                return Ok(p);
            }
        }
        Err(unexpected(body, pos, expected))
    }
}

/// Name of a HELP/TYPE/UNIT line: a legacy name or a quoted one (kept as written).
fn meta_name(src: Src<'_>, pos: usize, meta: Meta) -> Result<(&str, usize), Fail> {
    let body = src.bytes;
    let expected = match meta {
        Meta::Help => "metric name after HELP",
        Meta::Type => "metric name after TYPE",
        Meta::Unit => "metric name after UNIT",
    };
    match body.get(pos) {
        Some(&b) if is_metric_start(b) => {
            let end = metric_name_end(body, pos);
            Ok((src.name(pos, end), end))
        }
        Some(b'"') => {
            let q = scan_quoted(body, pos).map_err(|at| unexpected(body, at, "closing '\"'"))?;
            let name = src.str(q.start, q.end).map_err(|at| {
                (
                    at,
                    Reason::InvalidUtf8 {
                        what: "metric name",
                    },
                )
            })?;
            Ok((name, q.end + 1))
        }
        _ => Err(unexpected(body, pos, expected)),
    }
}
