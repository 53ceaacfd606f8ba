//! Parse errors: where (line, column) and what (a typed reason).

use std::fmt;

/// A malformed exposition. The whole scrape is rejected on the first error,
/// as Prometheus does.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {reason}")]
pub struct ParseError {
    line: usize,
    column: usize,
    reason: Reason,
}

impl ParseError {
    pub(super) fn new(line: usize, column: usize, reason: Reason) -> Self {
        Self {
            line,
            column,
            reason,
        }
    }

    /// 1-based line of the offending byte.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column, counted in bytes from the start of the line.
    pub fn column(&self) -> usize {
        self.column
    }

    /// A short, bounded name for the kind of error (safe as a metric label).
    pub fn kind(&self) -> &'static str {
        self.reason.kind()
    }

    /// The typed reason, for callers that want more than the message.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }
}

/// What was found where something else was expected; rendered for humans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A printable ASCII character.
    Char(char),
    /// Any other byte (control character, NUL, part of a UTF-8 sequence).
    Byte(u8),
    /// The end of the line.
    EndOfLine,
    /// The end of the body.
    EndOfInput,
}

impl Found {
    /// Describes the byte at `pos` of `body`.
    pub(super) fn at(body: &[u8], pos: usize) -> Self {
        match body.get(pos) {
            None => Self::EndOfInput,
            Some(b'\n') => Self::EndOfLine,
            Some(&b) if b.is_ascii_graphic() || b == b' ' => Self::Char(char::from(b)),
            Some(&b) => Self::Byte(b),
        }
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Char(c) => write!(f, "{c:?}"),
            Self::Byte(b) => write!(f, "byte 0x{b:02x}"),
            Self::EndOfLine => f.write_str("end of line"),
            Self::EndOfInput => f.write_str("end of input"),
        }
    }
}

/// Why an exposition was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// A token other than the one the grammar requires here.
    #[error("expected {expected}, found {found}")]
    Unexpected {
        /// What the grammar allows at this point.
        expected: &'static str,
        /// What the body holds instead.
        found: Found,
    },
    /// A label name repeated within one label set.
    #[error("label name {name:?} is not unique")]
    DuplicateLabel {
        /// The repeated name.
        name: String,
    },
    /// A label set without a metric name (neither before `{` nor quoted inside).
    #[error("metric name not set")]
    MissingMetricName,
    /// Two metric names for one series.
    #[error("metric name set twice")]
    DuplicateMetricName,
    /// Bytes that are not UTF-8 where text is required.
    #[error("invalid UTF-8 in {what}")]
    InvalidUtf8 {
        /// Which part of the line.
        what: &'static str,
    },
    /// A sample value that is not a float Prometheus accepts.
    #[error("invalid value {text:?}")]
    InvalidValue {
        /// The value as written (lossy UTF-8).
        text: String,
    },
    /// A timestamp that is not valid for the format.
    #[error("invalid timestamp {text:?}")]
    InvalidTimestamp {
        /// The timestamp as written (lossy UTF-8).
        text: String,
    },
    /// A `# TYPE` with a type the format does not define.
    #[error("invalid metric type {text:?}")]
    InvalidType {
        /// The type as written (lossy UTF-8).
        text: String,
    },
    /// OpenMetrics: a `# UNIT` that is not a suffix of the family name, or on a
    /// type that cannot have one.
    #[error("invalid unit {unit:?} for family {family:?}: {rule}")]
    InvalidUnit {
        /// The unit as written.
        unit: String,
        /// The family it was declared for.
        family: String,
        /// Which rule it breaks.
        rule: &'static str,
    },
    /// OpenMetrics: a comment line other than HELP, TYPE, UNIT or EOF.
    #[error("invalid comment line (OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF)")]
    InvalidComment,
    /// OpenMetrics: an empty line.
    #[error("blank line")]
    BlankLine,
    /// OpenMetrics: the body does not end with `# EOF`.
    #[error("missing \"# EOF\" at the end")]
    MissingEof,
    /// OpenMetrics: bytes after `# EOF`.
    #[error("unexpected data after \"# EOF\"")]
    TextAfterEof,
    /// OpenMetrics: HELP, TYPE or UNIT given twice for one family, or after
    /// its samples, or for a family that already ended.
    #[error("misplaced {what} for family {family:?}: {rule}")]
    MisplacedMetadata {
        /// HELP, TYPE or UNIT.
        what: &'static str,
        /// The family name.
        family: String,
        /// Which rule it breaks.
        rule: &'static str,
    },
    /// OpenMetrics: a family whose sample names overlap another family's.
    #[error("family {family:?} clashes with family {other:?}")]
    ClashingFamily {
        /// The family being declared.
        family: String,
        /// The family declared earlier.
        other: String,
    },
    /// OpenMetrics: a sample that breaks a rule of its family's type.
    #[error("{rule} (family {family:?})")]
    TypeRule {
        /// The family name.
        family: String,
        /// The rule, in words.
        rule: &'static str,
    },
}

impl Reason {
    /// A short, bounded name for the kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unexpected { .. } => "syntax",
            Self::DuplicateLabel { .. } => "duplicate_label",
            Self::MissingMetricName | Self::DuplicateMetricName => "metric_name",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::InvalidValue { .. } => "invalid_value",
            Self::InvalidTimestamp { .. } => "invalid_timestamp",
            Self::InvalidType { .. } => "invalid_type",
            Self::InvalidUnit { .. } => "invalid_unit",
            Self::InvalidComment => "invalid_comment",
            Self::BlankLine => "blank_line",
            Self::MissingEof => "missing_eof",
            Self::TextAfterEof => "text_after_eof",
            Self::MisplacedMetadata { .. } => "misplaced_metadata",
            Self::ClashingFamily { .. } => "clashing_family",
            Self::TypeRule { .. } => "type_rule",
        }
    }
}

/// Renders a slice of the body for an error message without failing on bad UTF-8.
pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
