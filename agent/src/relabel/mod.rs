//! Prometheus `relabel_configs` with Prometheus' exact semantics, compiled once.

use serde::Deserialize;

use crate::model::Labels;

/// One `relabel_config` exactly as written in Prometheus YAML. Omitted fields
/// take Prometheus' defaults when compiled.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` to form the input.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Separator for the joined input (default `;`).
    pub separator: Option<String>,
    /// RE2-style regex, anchored at both ends (default `(.*)`).
    pub regex: Option<String>,
    /// Modulus for `hashmod`.
    pub modulus: Option<u64>,
    /// Label written by `replace`, `hashmod`, `lowercase`, `uppercase`, compared by `keepequal`/`dropequal`.
    pub target_label: Option<String>,
    /// Replacement with `$1`/`${name}` expansion (default `$1`).
    pub replacement: Option<String>,
    /// The action (default `replace`), case-insensitive.
    pub action: Option<String>,
}

/// A compiled list of relabel rules, applied in order.
#[derive(Debug, Clone, Default)]
pub struct Rules {}

/// Why a list of relabel rules does not compile.
// Minimal placeholder so `config` compiles on its own branch; the relabel
// branch owns the real definition and replaces this on merge.
#[derive(Debug, thiserror::Error)]
#[error("rule {index}: {message}")]
pub struct RelabelError {
    /// Index of the failing rule in its list.
    pub index: usize,
    /// What is wrong with it.
    pub message: String,
}

impl Rules {
    /// Compiles `configs` once, checking each rule's regex (anchored like
    /// Prometheus: `^(?s:<regex>)$`).
    // Minimal version for the config branch; replaced by the relabel branch.
    pub fn compile(configs: &[RelabelConfig]) -> Result<Self, RelabelError> {
        for (index, c) in configs.iter().enumerate() {
            if let Some(re) = &c.regex {
                regex::Regex::new(&format!("^(?s:{re})$")).map_err(|e| RelabelError {
                    index,
                    message: format!("invalid regex {re:?}: {e}"),
                })?;
            }
        }
        Ok(Self {})
    }

    /// Applies the rules to `labels` in place; returns false when a rule drops the series.
    pub fn process(&self, labels: &mut Labels) -> bool {
        let _ = labels;
        true
    }
}
