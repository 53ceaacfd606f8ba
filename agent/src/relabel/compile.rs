//! Validation (Prometheus' `Config.Validate`, legacy label names) and
//! compilation of raw [`RelabelConfig`]s into ready-to-run rules.

use std::fmt;

use regex::Regex;

use super::config::RelabelConfig;
use super::dialect;
use super::error::{LABEL_NAME, RelabelError, TEMPLATE_NAME};
use super::template::{Template, is_valid_name_template};
use crate::model::is_valid_label_name;

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

/// A relabel action (YAML `action`, case-insensitive, default `replace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Write `replacement` (expanded) to `target_label` (expanded) when `regex` matches.
    Replace,
    /// Drop the series/target unless `regex` matches.
    Keep,
    /// Drop the series/target when `regex` matches.
    Drop,
    /// Drop unless the joined source values equal the value of `target_label`.
    KeepEqual,
    /// Drop when the joined source values equal the value of `target_label`.
    DropEqual,
    /// Set `target_label` to md5(joined) modulo `modulus`.
    HashMod,
    /// Copy every label whose name matches `regex` to the expanded `replacement` name.
    LabelMap,
    /// Delete every label whose name matches `regex`.
    LabelDrop,
    /// Delete every label whose name does not match `regex`.
    LabelKeep,
    /// Set `target_label` to the lower-cased joined value.
    Lowercase,
    /// Set `target_label` to the upper-cased joined value.
    Uppercase,
}

impl Action {
    /// Every action, in Prometheus' documentation order.
    pub const ALL: [Action; 11] = [
        Self::Replace,
        Self::Keep,
        Self::Drop,
        Self::KeepEqual,
        Self::DropEqual,
        Self::HashMod,
        Self::LabelMap,
        Self::LabelDrop,
        Self::LabelKeep,
        Self::Lowercase,
        Self::Uppercase,
    ];

    /// The YAML name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replace => "replace",
            Self::Keep => "keep",
            Self::Drop => "drop",
            Self::KeepEqual => "keepequal",
            Self::DropEqual => "dropequal",
            Self::HashMod => "hashmod",
            Self::LabelMap => "labelmap",
            Self::LabelDrop => "labeldrop",
            Self::LabelKeep => "labelkeep",
            Self::Lowercase => "lowercase",
            Self::Uppercase => "uppercase",
        }
    }

    /// Parses a YAML action name; like Prometheus, case-insensitively (Unicode lower-casing).
    pub fn parse(name: &str) -> Option<Action> {
        let lower = name.to_lowercase();
        Self::ALL.into_iter().find(|a| a.as_str() == lower)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An anchored regex that knows when it is the default `(.*)`, which matches
/// every string with group 1 = group 0 = the input, so it never needs to run.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    pub(crate) regex: Regex,
    pub(crate) matches_all: bool,
}

impl Matcher {
    pub(crate) fn is_match(&self, value: &str) -> bool {
        self.matches_all || self.regex.is_match(value)
    }
}

/// What one compiled rule does, with exactly the fields its action uses.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Replace {
        regex: Matcher,
        target: Template,
        replacement: Template,
    },
    Keep(Matcher),
    Drop(Matcher),
    KeepEqual(Box<str>),
    DropEqual(Box<str>),
    HashMod {
        target: Box<str>,
        modulus: u64,
    },
    LabelMap {
        regex: Regex,
        replacement: Template,
    },
    LabelDrop(Regex),
    LabelKeep(Regex),
    Lowercase(Box<str>),
    Uppercase(Box<str>),
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) action: Action,
    pub(crate) source_labels: Box<[Box<str>]>,
    pub(crate) separator: Box<str>,
    pub(crate) op: Op,
}

/// Validates and compiles the rule at `index`.
pub(crate) fn compile_rule(index: usize, c: &RelabelConfig) -> Result<Rule, RelabelError> {
    let action = match c.action.as_deref() {
        None => Action::Replace,
        Some(name) => Action::parse(name).ok_or_else(|| RelabelError::UnknownAction {
            index,
            action: name.to_owned(),
        })?,
    };
    // Prometheus validates source label names while decoding YAML.
    if let Some((position, name)) = c
        .source_labels
        .iter()
        .enumerate()
        .find(|(_, n)| !is_valid_label_name(n))
    {
        return Err(RelabelError::InvalidSourceLabel {
            index,
            position,
            value: name.clone(),
        });
    }
    let regex_src = c.regex.as_deref().unwrap_or(DEFAULT_REGEX);
    let regex = compile_regex(index, regex_src)?;
    validate(index, action, c)?;

    let target = || c.target_label.as_deref().unwrap_or_default().into();
    let replacement = c.replacement.as_deref().unwrap_or(DEFAULT_REPLACEMENT);
    let matcher = || Matcher {
        regex: regex.clone(),
        matches_all: regex_src == DEFAULT_REGEX,
    };
    let op = match action {
        Action::Replace => Op::Replace {
            target: Template::parse(c.target_label.as_deref().unwrap_or_default(), &regex),
            replacement: Template::parse(replacement, &regex),
            regex: matcher(),
        },
        Action::Keep => Op::Keep(matcher()),
        Action::Drop => Op::Drop(matcher()),
        Action::KeepEqual => Op::KeepEqual(target()),
        Action::DropEqual => Op::DropEqual(target()),
        Action::HashMod => Op::HashMod {
            target: target(),
            modulus: c.modulus.unwrap_or(0),
        },
        Action::LabelMap => Op::LabelMap {
            replacement: Template::parse(replacement, &regex),
            regex: regex.clone(),
        },
        Action::LabelDrop => Op::LabelDrop(regex.clone()),
        Action::LabelKeep => Op::LabelKeep(regex.clone()),
        Action::Lowercase => Op::Lowercase(target()),
        Action::Uppercase => Op::Uppercase(target()),
    };
    Ok(Rule {
        action,
        source_labels: c.source_labels.iter().map(|s| s.as_str().into()).collect(),
        separator: c.separator.as_deref().unwrap_or(DEFAULT_SEPARATOR).into(),
        op,
    })
}

/// Compiles `re` the Prometheus way: anchored at both ends, `.` matching `\n`,
/// Go's RE2 dialect.
fn compile_regex(index: usize, re: &str) -> Result<Regex, RelabelError> {
    Regex::new(&format!("^(?s:{})$", dialect::from_go(re))).map_err(|source| {
        // Syntax errors span several lines (pattern, caret, "error: ...");
        // the last line is the reason.
        let text = source.to_string();
        let last = text.lines().last().unwrap_or_default();
        let reason = last.strip_prefix("error: ").unwrap_or(last).to_owned();
        RelabelError::InvalidRegex {
            index,
            regex: re.to_owned(),
            reason,
            source,
        }
    })
}

/// Prometheus' `Config.Validate`, in its order, with legacy name validation.
fn validate(index: usize, action: Action, c: &RelabelConfig) -> Result<(), RelabelError> {
    use Action as A;
    let target = c.target_label.as_deref().unwrap_or_default();
    let invalid_name = |field, value: &str, expected| RelabelError::InvalidName {
        index,
        field,
        value: value.to_owned(),
        action,
        expected,
    };
    let not_allowed = |field, allowed| RelabelError::FieldNotAllowed {
        index,
        field,
        action,
        allowed,
    };

    if action == A::HashMod && c.modulus.unwrap_or(0) == 0 {
        return Err(RelabelError::ZeroModulus { index });
    }
    let writes_target = matches!(
        action,
        A::Replace | A::HashMod | A::Lowercase | A::Uppercase | A::KeepEqual | A::DropEqual
    );
    if writes_target && target.is_empty() {
        return Err(RelabelError::MissingField {
            index,
            field: "target_label",
            action,
        });
    }
    if action == A::Replace {
        let valid = if target.contains('$') {
            is_valid_name_template(target)
        } else {
            is_valid_label_name(target)
        };
        if !valid {
            let expected = if target.contains('$') {
                TEMPLATE_NAME
            } else {
                LABEL_NAME
            };
            return Err(invalid_name("target_label", target, expected));
        }
    }
    let plain_target = matches!(
        action,
        A::Lowercase | A::Uppercase | A::KeepEqual | A::DropEqual
    );
    if (plain_target || action == A::HashMod) && !is_valid_label_name(target) {
        return Err(invalid_name("target_label", target, LABEL_NAME));
    }
    let replacement_is_default = c
        .replacement
        .as_deref()
        .is_none_or(|r| r == DEFAULT_REPLACEMENT);
    if plain_target && !replacement_is_default {
        return Err(not_allowed(
            "replacement",
            "it writes the joined source values",
        ));
    }
    if action == A::LabelMap {
        let replacement = c.replacement.as_deref().unwrap_or(DEFAULT_REPLACEMENT);
        if !is_valid_name_template(replacement) {
            return Err(invalid_name("replacement", replacement, TEMPLATE_NAME));
        }
    }
    let separator_is_default = c
        .separator
        .as_deref()
        .is_none_or(|s| s == DEFAULT_SEPARATOR);
    let modulus_is_default = c.modulus.unwrap_or(0) == 0;
    if matches!(action, A::KeepEqual | A::DropEqual) {
        const ALLOWED: &str = "only source_labels and target_label may be set";
        // Prometheus compares the regex by identity: any explicit regex is rejected.
        if c.regex.is_some() {
            return Err(not_allowed("regex", ALLOWED));
        }
        if !modulus_is_default {
            return Err(not_allowed("modulus", ALLOWED));
        }
        if !separator_is_default {
            return Err(not_allowed("separator", ALLOWED));
        }
    }
    if matches!(action, A::LabelDrop | A::LabelKeep) {
        const ALLOWED: &str = "only regex may be set";
        if !c.source_labels.is_empty() {
            return Err(not_allowed("source_labels", ALLOWED));
        }
        if !target.is_empty() {
            return Err(not_allowed("target_label", ALLOWED));
        }
        if !modulus_is_default {
            return Err(not_allowed("modulus", ALLOWED));
        }
        if !separator_is_default {
            return Err(not_allowed("separator", ALLOWED));
        }
        if !replacement_is_default {
            return Err(not_allowed("replacement", ALLOWED));
        }
    }
    Ok(())
}
