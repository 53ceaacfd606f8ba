//! Deciding whether a test runs, skips or fails when an external program is missing.

use std::path::Path;

use crate::deps_table;

/// Prometheus, from the Debian package `prometheus`.
pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";
/// VictoriaMetrics single-node, from the Debian package `victoria-metrics`.
pub const VICTORIA_METRICS_BIN: &str = "/usr/bin/victoria-metrics";
/// vmagent, also from the Debian package `victoria-metrics` (the comparison benchmark).
pub const VMAGENT_BIN: &str = "/usr/bin/vmagent";

/// Whether a test can go on.
#[must_use = "a skipped test must return early"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// The binary exists: run the test.
    Present,
    /// The binary is missing and skipping is allowed: return from the test now.
    Skip,
}

impl Availability {
    /// True when the test should return early.
    pub fn is_skip(self) -> bool {
        self == Self::Skip
    }
}

/// Whether missing dependencies must fail tests (CI) rather than skip them (laptops).
pub fn deps_required() -> bool {
    let set = |name: &str, value: &str| std::env::var(name).is_ok_and(|v| v == value);
    set("CROWSNEST_TEST_REQUIRE_DEPS", "1") || set("CI", "true")
}

/// Checks that `path` exists. When it does not, prints a notice and returns
/// [`Availability::Skip`], or panics with the install hint when dependencies are required.
///
/// # Panics
/// When the binary is missing and [`deps_required`] is true.
pub fn require_binary(path: &str) -> Availability {
    check_binary(path, deps_required())
}

fn check_binary(path: &str, required: bool) -> Availability {
    if Path::new(path).exists() {
        return Availability::Present;
    }
    let hint = install_hint(path);
    assert!(!required, "{path} is missing and CI requires it: {hint}");
    eprintln!("SKIPPED: {path} is missing ({hint})");
    Availability::Skip
}

/// How to get the binary: its package from `tests/dependencies.txt`, or the table to fix.
fn install_hint(path: &str) -> String {
    match deps_table::dependencies() {
        Ok(deps) => match deps.iter().find(|dep| dep.binary == path) {
            Some(dep) => format!(
                "run `cargo xtask test` or `apt-get install {}`; needed as {}",
                dep.package, dep.purpose
            ),
            None => format!("{path} is not listed in tests/dependencies.txt; add it there"),
        },
        Err(err) => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_name_binaries_from_the_table() {
        let deps = deps_table::dependencies().expect("table parses");
        for bin in [PROMETHEUS_BIN, VICTORIA_METRICS_BIN, VMAGENT_BIN] {
            assert!(
                deps.iter().any(|dep| dep.binary == bin),
                "{bin} not in dependencies.txt"
            );
        }
    }

    #[test]
    fn missing_binaries_skip_locally_and_fail_when_required() {
        assert_eq!(check_binary("/bin/sh", true), Availability::Present);
        assert!(check_binary("/nonexistent/bin", false).is_skip());
        let failed = std::panic::catch_unwind(|| check_binary("/nonexistent/bin", true));
        assert!(failed.is_err(), "a required missing binary panics");
    }

    #[test]
    fn the_hint_names_the_package_or_the_table() {
        assert!(install_hint(PROMETHEUS_BIN).contains("apt-get install prometheus"));
        assert!(install_hint("/nope").contains("dependencies.txt"));
    }
}
