//! Prometheus `relabel_configs` with Prometheus' exact semantics, compiled once.
//!
//! [`RelabelConfig`] is the inert YAML form; [`Rules::compile`] validates it
//! (Prometheus' `Config.Validate` with legacy label names, which Prometheus
//! 2.42 and remote write 1.0 require) and compiles every regex and `$`
//! template once; [`Rules::process`] then runs them on each label set
//! without compiling anything and, on the common paths, without allocating.
//!
//! Where we knowingly differ from Prometheus (each one tested):
//! - label names are validated the legacy way, so configs that need UTF-8
//!   names (TestRelabel cases 29–31) are rejected when compiled;
//! - `labelmap` skips a mapped name that is not a valid label name (as
//!   `replace` does) instead of producing it and failing the scrape later;
//! - Rust's regex accepts a little syntax Go rejects (e.g. `(?x)`, counted
//!   repetition above 1000); matching of patterns both accept is identical
//!   (see `dialect`).

mod compile;
mod config;
mod dialect;
mod engine;
mod error;
mod template;

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test should panic on unexpected errors"
)]
mod alloc_tests;
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test should panic on unexpected errors"
)]
mod conformance_tests;
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test should panic on unexpected errors"
)]
mod tests;

use std::cell::Cell;
use std::sync::Arc;

pub use compile::Action;
pub use config::RelabelConfig;
pub use error::RelabelError;

use crate::model::Labels;

/// A compiled list of relabel rules, applied in order. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Arc<[compile::Rule]>,
}

/// What one rule did, reported by [`Rules::process_observed`] (for
/// `crowsnest debug relabel`).
#[derive(Debug)]
pub struct Step<'a> {
    /// Position of the rule in its list.
    pub index: usize,
    /// The rule's action.
    pub action: Action,
    /// The labels after the rule ran (unchanged when it dropped them).
    pub labels: &'a Labels,
    /// False when this rule dropped the series/target.
    pub kept: bool,
}

thread_local! {
    // Taken out for the duration of one `process` call and put back after,
    // so a nested call (from an observer) finds a fresh one instead of panicking.
    static SCRATCH: Cell<engine::Scratch> = const { Cell::new(engine::Scratch::new()) };
}

impl Rules {
    /// Compiles and validates `configs`. Errors name the rule index and field
    /// and say what is expected; the config loader prefixes the YAML path.
    pub fn compile(configs: &[RelabelConfig]) -> Result<Rules, RelabelError> {
        let rules = configs
            .iter()
            .enumerate()
            .map(|(index, c)| compile::compile_rule(index, c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rules {
            rules: rules.into(),
        })
    }

    /// Applies the rules in order to `labels` in place; returns false when a
    /// rule drops the series/target (the first drop stops processing, and
    /// `labels` is then left as that rule found it).
    pub fn process(&self, labels: &mut Labels) -> bool {
        self.process_observed(labels, |_| {})
    }

    /// Like [`Rules::process`], calling `observe` after every rule that ran.
    pub fn process_observed(&self, labels: &mut Labels, mut observe: impl FnMut(Step<'_>)) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let mut scratch = SCRATCH.take();
        let mut kept = true;
        for (index, rule) in self.rules.iter().enumerate() {
            kept = engine::apply(rule, labels, &mut scratch);
            observe(Step {
                index,
                action: rule.action,
                labels,
                kept,
            });
            if !kept {
                break;
            }
        }
        scratch.shrink();
        SCRATCH.set(scratch);
        kept
    }

    /// True when there are no rules (processing changes nothing).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The action of each rule, in order.
    pub fn actions(&self) -> impl ExactSizeIterator<Item = Action> + '_ {
        self.rules.iter().map(|r| r.action)
    }
}
