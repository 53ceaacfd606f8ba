//! Why a configuration was refused. Every message names the field path (or
//! the environment variable), the offending value when it is not secret,
//! what is expected and how to fix it.

use std::path::PathBuf;

use crate::relabel::RelabelError;

/// A configuration that cannot be loaded.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}; check the path and its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed, or a value has the wrong shape (unknown field,
    /// wrong type, unparsable duration).
    #[error("{path}: {message}{}", location.map(|(l, c)| format!(" (line {l}, column {c})")).unwrap_or_default())]
    Yaml {
        /// Field path such as `scrape_configs[1].tls_config.ca_fle`.
        path: String,
        /// What is wrong and what is expected.
        message: String,
        /// Line and column in the YAML, when known.
        location: Option<(usize, usize)>,
    },
    /// A `CROWSNEST_…` environment variable could not be applied.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable's name.
        var: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A value is well-formed but not allowed (out of range, conflicting, duplicate).
    #[error("{path} {problem}: {fix}")]
    Invalid {
        /// Field path such as `scrape_configs[0].scrape_timeout`.
        path: String,
        /// What is wrong, with the value when it is not secret.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// A relabel rule list does not compile.
    #[error("{path}: {source}")]
    Relabel {
        /// Field path such as `scrape_configs[0].metric_relabel_configs`.
        path: String,
        /// The relabel compiler's error.
        #[source]
        source: RelabelError,
    },
}

impl ConfigError {
    /// A short, bounded name of the error kind, for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Yaml { .. } => "yaml",
            Self::Env { .. } => "env",
            Self::Invalid { .. } => "invalid",
            Self::Relabel { .. } => "relabel",
        }
    }

    /// Shorthand for [`ConfigError::Invalid`].
    pub(super) fn invalid(
        path: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            path: path.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// Joins a parent path and a field name: `field("scrape_configs[0]", "job_name")`.
pub(super) fn field(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// Keys that are valid for Prometheus (or YAML) but that crowsnest does not
/// implement, with what to do instead. Appended to "unknown field" errors so
/// a copied Prometheus config fails with a useful explanation.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("file_sd_configs", SD),
    ("http_sd_configs", SD),
    ("dns_sd_configs", SD),
    ("consul_sd_configs", SD),
    (
        "rule_files",
        "crowsnest is an agent and evaluates no rules: remove this section",
    ),
    (
        "alerting",
        "crowsnest is an agent and sends no alerts: remove this section",
    ),
    ("remote_read", "crowsnest only writes: remove this section"),
    (
        "scrape_config_files",
        "not supported yet: put the scrape configs in this file",
    ),
    (
        "oauth2",
        "not supported yet: use authorization, basic_auth or bearer_token_file",
    ),
    ("proxy_url", "proxies are not supported yet"),
    ("follow_redirects", "not configurable yet: remove the line"),
    ("enable_http2", "not configurable yet: remove the line"),
    (
        "sigv4",
        "not supported yet: use authorization or basic_auth",
    ),
    (
        "azuread",
        "not supported yet: use authorization or basic_auth",
    ),
    (
        "send_native_histograms",
        "native histograms are not sent yet: remove the line",
    ),
    (
        "metadata_config",
        "metadata is not sent yet: remove the section",
    ),
    (
        "<<",
        "YAML merge keys are not supported: repeat the settings (anchors and aliases do work)",
    ),
];

/// Hint for Prometheus service discovery sections.
const SD: &str = "service discovery other than static_configs and kubernetes_sd_configs (role: pod) is not supported yet";

/// Adds a hint to serde's "unknown field `x`, expected …" when `x` is a
/// known setting crowsnest does not implement.
pub(super) fn with_hint(message: String) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message;
    };
    let name = rest.split('`').next().unwrap_or_default();
    match UNSUPPORTED.iter().find(|(n, _)| *n == name) {
        Some((_, hint)) => format!("{message}; {hint}"),
        None => message,
    }
}

/// Turns a `serde_yaml` error located by `serde_path_to_error` into a [`ConfigError`].
pub(super) fn from_yaml(err: serde_path_to_error::Error<serde_yaml::Error>) -> ConfigError {
    let path = display_path(&err.path().to_string());
    let inner = err.into_inner();
    let location = inner.location().map(|l| (l.line(), l.column()));
    // serde_yaml decorates its message with its own path prefix and a
    // location suffix; we report both separately, so strip them.
    let mut message = inner.to_string();
    if let Some((line, column)) = location {
        let suffix = format!(" at line {line} column {column}");
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    // serde_yaml names the failing value's path, or its parent's for an
    // unknown field.
    let parent = path.rfind(['.', '[']).map(|i| &path[..i]);
    for prefix in std::iter::once(path.as_str()).chain(parent) {
        if let Some(stripped) = message.strip_prefix(&format!("{prefix}: ")) {
            message = stripped.to_owned();
            break;
        }
    }
    // Syntax errors already say where they are.
    let location = location.filter(|_| !message.contains(" at line "));
    ConfigError::Yaml {
        path,
        message: with_hint(message),
        location,
    }
}

/// `serde_path_to_error` prints the root as `.`; name it instead.
pub(super) fn display_path(path: &str) -> String {
    if path.is_empty() || path == "." {
        "config".to_owned()
    } else {
        path.to_owned()
    }
}
