//! Compile errors for relabel rules: each names the rule index and field and
//! says what is expected. The config loader prefixes the YAML path.

use super::Action;

/// The pattern a `replace` `target_label` or `labelmap` `replacement` must follow.
pub(crate) const TEMPLATE_NAME: &str =
    "letters, digits, '_' and $1/${1}/$name/${name} references, not starting with a digit";
/// The legacy Prometheus label name pattern.
pub(crate) const LABEL_NAME: &str = "a label name matching [a-zA-Z_][a-zA-Z0-9_]*";

/// Why a list of `relabel_config`s cannot be compiled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RelabelError {
    /// `action` is empty or not one of Prometheus' actions.
    #[error(
        "relabel rule {index}: action {action:?} is unknown; expected one of replace, keep, drop, \
         keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase"
    )]
    UnknownAction {
        /// Position of the rule in its list.
        index: usize,
        /// The action as written.
        action: String,
    },
    /// `regex` does not compile.
    #[error("relabel rule {index}: regex {regex:?} is invalid: {reason}")]
    InvalidRegex {
        /// Position of the rule in its list.
        index: usize,
        /// The regex as written (without the anchors we add).
        regex: String,
        /// One-line reason from the regex compiler.
        reason: String,
        /// The compiler's full error.
        #[source]
        source: regex::Error,
    },
    /// A field the action needs is missing.
    #[error("relabel rule {index}: {field} is required for action \"{action}\"")]
    MissingField {
        /// Position of the rule in its list.
        index: usize,
        /// The missing field.
        field: &'static str,
        /// The rule's action.
        action: Action,
    },
    /// `hashmod` with `modulus: 0` (or none).
    #[error("relabel rule {index}: modulus must be greater than 0 for action \"hashmod\"")]
    ZeroModulus {
        /// Position of the rule in its list.
        index: usize,
    },
    /// `target_label` (or `labelmap`'s `replacement`) cannot name a label.
    #[error(
        "relabel rule {index}: {field} {value:?} is invalid for action \"{action}\"; expected {expected}"
    )]
    InvalidName {
        /// Position of the rule in its list.
        index: usize,
        /// `target_label` or `replacement`.
        field: &'static str,
        /// The value as written.
        value: String,
        /// The rule's action.
        action: Action,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// An entry of `source_labels` is not a label name.
    #[error(
        "relabel rule {index}: source_labels[{position}] {value:?} is invalid; expected {LABEL_NAME}"
    )]
    InvalidSourceLabel {
        /// Position of the rule in its list.
        index: usize,
        /// Position inside `source_labels`.
        position: usize,
        /// The name as written.
        value: String,
    },
    /// A field the action does not use is set (Prometheus rejects these rather than ignore them).
    #[error("relabel rule {index}: {field} cannot be set for action \"{action}\"; {allowed}")]
    FieldNotAllowed {
        /// Position of the rule in its list.
        index: usize,
        /// The offending field.
        field: &'static str,
        /// The rule's action.
        action: Action,
        /// Which fields the action accepts.
        allowed: &'static str,
    },
}

impl RelabelError {
    /// Short, bounded name of the error kind (for metric labels).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownAction { .. } => "unknown_action",
            Self::InvalidRegex { .. } => "invalid_regex",
            Self::MissingField { .. } => "missing_field",
            Self::ZeroModulus { .. } => "zero_modulus",
            Self::InvalidName { .. } => "invalid_name",
            Self::InvalidSourceLabel { .. } => "invalid_source_label",
            Self::FieldNotAllowed { .. } => "field_not_allowed",
        }
    }

    /// Position of the offending rule in its list (0-based).
    pub fn index(&self) -> usize {
        match self {
            Self::UnknownAction { index, .. }
            | Self::InvalidRegex { index, .. }
            | Self::MissingField { index, .. }
            | Self::ZeroModulus { index }
            | Self::InvalidName { index, .. }
            | Self::InvalidSourceLabel { index, .. }
            | Self::FieldNotAllowed { index, .. } => *index,
        }
    }

    /// The YAML field of the rule that is wrong.
    pub fn field(&self) -> &'static str {
        match self {
            Self::UnknownAction { .. } => "action",
            Self::InvalidRegex { .. } => "regex",
            Self::ZeroModulus { .. } => "modulus",
            Self::InvalidSourceLabel { .. } => "source_labels",
            Self::MissingField { field, .. }
            | Self::InvalidName { field, .. }
            | Self::FieldNotAllowed { field, .. } => field,
        }
    }
}
