//! Reading the YAML file, layering `CROWSNEST_…` environment overrides on
//! it, and validating the result into [`Config`].
//!
//! Why the YAML is not read through the `config` crate: its YAML source turns
//! every scalar into a typed value first, so `version: 1.10` becomes the
//! string `"1.1"`, `password: 0123` becomes `"123"` and `scrape_timeout: 1.5`
//! into an integer field rounds to 2. Prometheus (yaml.v2) keeps the text
//! of a scalar read into a string, so we deserialize the file directly with
//! `serde_yaml`, which does the same. The environment layer does go through
//! the `config` crate (prefix, `__` nesting, string-to-bool/number coercion),
//! except where it would be wrong:
//! - it lowercases keys, and label names are case-sensitive, so
//!   `CROWSNEST_GLOBAL__EXTERNAL_LABELS__<name>` is applied here with the
//!   name's case kept;
//! - it cannot address list entries, so variables under `scrape_configs` or
//!   `remote_write` are refused with a clear error instead of being ignored.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::discovery::RawDiscovery;
use super::error::{ConfigError, display_path, from_yaml, with_hint};
use super::global::RawGlobal;
use super::http_client::resolve_paths;
use super::kubernetes::{ANNOTATION_JOB, RawKubernetes, annotation_job};
use super::remote_write::{self, RawRemoteWrite};
use super::scrape::{self, RawScrapeConfig};
use super::server::{RawLogging, RawRuntime, RawServer, RawStorage};
use super::types::{Config, KubeMode};
use super::unique_map::UniqueMap;

/// Prefix of the override variables, followed by one `_`.
const ENV_PREFIX: &str = "CROWSNEST_";
/// Separator between nesting levels in a variable name.
const ENV_SEPARATOR: &str = "__";
/// Sections that hold lists; the environment cannot address their entries.
const LIST_SECTIONS: &[&str] = &["scrape_configs", "remote_write"];
/// Sections the environment can override field by field.
const ENV_SECTIONS: &[&str] = &[
    "global",
    "server",
    "storage",
    "logging",
    "runtime",
    "discovery",
    "kubernetes",
];
/// Variable-name prefix (after [`ENV_PREFIX`]) of external label overrides.
const EXTERNAL_LABELS_PREFIX: &str = "GLOBAL__EXTERNAL_LABELS__";

/// The whole file as written. Unknown keys are refused at every level.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a config map with global, scrape_configs, remote_write, server, storage, logging, runtime, collectors, discovery, kubernetes"
)]
struct RawConfig {
    /// Scrape defaults and external labels.
    global: Option<RawGlobal>,
    /// Scrape jobs.
    scrape_configs: Option<Vec<RawScrapeConfig>>,
    /// Remote write endpoints.
    remote_write: Option<Vec<RawRemoteWrite>>,
    /// The agent's HTTP server.
    server: Option<RawServer>,
    /// State on disk.
    storage: Option<RawStorage>,
    /// Logs.
    logging: Option<RawLogging>,
    /// The async runtime.
    runtime: Option<RawRuntime>,
    /// eBPF collectors.
    collectors: Option<super::collectors::RawCollectorsConfig>,
    /// Control-plane discovery.
    discovery: Option<RawDiscovery>,
    /// Kubernetes metadata.
    kubernetes: Option<RawKubernetes>,
}

/// The sections the environment may override.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "overrides of global, server, storage, logging, runtime, discovery or kubernetes"
)]
struct RawEnv {
    global: Option<RawGlobal>,
    server: Option<RawServer>,
    storage: Option<RawStorage>,
    logging: Option<RawLogging>,
    runtime: Option<RawRuntime>,
    discovery: Option<RawDiscovery>,
    kubernetes: Option<RawKubernetes>,
}

/// Loads a YAML file (None = built-in defaults only) and applies CROWSNEST_* environment overrides.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let yaml = match path {
        Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
            path: p.to_owned(),
            source,
        })?,
        None => String::new(),
    };
    let env = process_env()?;
    let mut config = load_from_str(&yaml, &env)?;
    if let Some(dir) = path.and_then(Path::parent) {
        for s in &mut config.scrape_configs {
            resolve_paths(&mut s.http, dir);
        }
        for r in &mut config.remote_write {
            resolve_paths(&mut r.http, dir);
        }
        config.discovery.resolve_paths(dir);
        if let Some(k) = config.kubernetes.kubeconfig.as_mut()
            && k.is_relative()
        {
            *k = dir.join(&*k);
        }
    }
    Ok(config)
}

/// Same from a YAML string and an explicit env (for tests and `crowsnest check config`).
pub fn load_from_str(yaml: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let mut raw = parse_yaml(yaml)?;
    apply_env(&mut raw, env)?;
    let global = raw.global.unwrap_or_default().build()?;
    let scrape_configs = scrape::build_all(raw.scrape_configs.unwrap_or_default(), &global)?;
    let remote_write = remote_write::build_all(raw.remote_write.unwrap_or_default())?;
    let mut kubernetes = raw.kubernetes.unwrap_or_default().build()?;
    // The chart's job is added by the app only when Kubernetes is reachable,
    // and never over a user's job of the same name.
    if kubernetes.annotation_discovery
        && kubernetes.mode != KubeMode::Disabled
        && !scrape_configs.iter().any(|s| s.job_name == ANNOTATION_JOB)
    {
        kubernetes.annotation_job = annotation_job(&global)?.pop();
    }
    Ok(Config {
        global,
        scrape_configs,
        remote_write,
        server: raw.server.unwrap_or_default().build()?,
        storage: raw.storage.unwrap_or_default().build()?,
        logging: raw.logging.unwrap_or_default().build()?,
        runtime: raw.runtime.unwrap_or_default().build()?,
        collectors: raw
            .collectors
            .unwrap_or_default()
            .validate(super::duration::parse_duration)
            .map_err(|e| {
                ConfigError::invalid(
                    format!("collectors.{}", e.field),
                    e.message,
                    "see the collectors section of agent/config/example.yaml",
                )
            })?,
        discovery: raw.discovery.unwrap_or_default().build()?,
        kubernetes,
    })
}

fn parse_yaml(yaml: &str) -> Result<RawConfig, ConfigError> {
    // An empty file (or one with only comments) means "all defaults".
    if yaml
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(RawConfig::default());
    }
    serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(yaml)).map_err(from_yaml)
}

/// The process environment's `CROWSNEST_…` variables; a non-UTF-8 value is
/// an error rather than silently skipped.
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (key, value) in std::env::vars_os() {
        let Some(key) = key.to_str().filter(|k| is_ours(k)).map(str::to_owned) else {
            continue;
        };
        let value = value.into_string().map_err(|_| ConfigError::Env {
            var: key.clone(),
            message: "is not valid UTF-8: set it to a UTF-8 value".to_owned(),
        })?;
        out.push((key, value));
    }
    Ok(out)
}

fn is_ours(key: &str) -> bool {
    key.get(..ENV_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
}

/// Applies the environment layer on top of the file.
fn apply_env(raw: &mut RawConfig, env: &[(String, String)]) -> Result<(), ConfigError> {
    let mut for_config_crate: config::Map<String, String> = config::Map::new();
    // Lowercased dotted path -> variable, to name the variable in errors.
    let mut origin: HashMap<String, String> = HashMap::new();
    let mut labels = BTreeMap::new();
    for (var, value) in env {
        if !is_ours(var) {
            continue;
        }
        let rest = &var[ENV_PREFIX.len()..];
        // Variables without `__` are not config keys (e.g. a future
        // CROWSNEST_CONFIG naming the file) unless they look like a
        // mistyped one.
        let Some((section, _)) = rest.split_once(ENV_SEPARATOR) else {
            if let Some(s) = ENV_SECTIONS
                .iter()
                .chain(LIST_SECTIONS)
                .find(|s| starts_with_ci(rest, &format!("{s}_")))
            {
                return Err(ConfigError::Env {
                    var: var.clone(),
                    message: format!(
                        "separate the section from the field with two underscores, e.g. CROWSNEST_{}__<FIELD>",
                        s.to_ascii_uppercase()
                    ),
                });
            }
            continue;
        };
        if LIST_SECTIONS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(section))
        {
            return Err(ConfigError::Env {
                var: var.clone(),
                message: format!(
                    "{} is a list and cannot be overridden from the environment: set it in the config file",
                    section.to_ascii_lowercase()
                ),
            });
        }
        if starts_with_ci(rest, EXTERNAL_LABELS_PREFIX) {
            let name = &rest[EXTERNAL_LABELS_PREFIX.len()..];
            labels.insert(name.to_owned(), value.clone());
            continue;
        }
        origin.insert(
            rest.to_ascii_lowercase().replace(ENV_SEPARATOR, "."),
            var.clone(),
        );
        for_config_crate.insert(var.clone(), value.clone());
    }

    let overrides = env_layer(for_config_crate, &origin)?;
    if let Some(g) = overrides.global {
        raw.global.get_or_insert_default().overlay(g);
    }
    if !labels.is_empty() {
        raw.global.get_or_insert_default().overlay(RawGlobal {
            external_labels: Some(UniqueMap(labels)),
            ..RawGlobal::default()
        });
    }
    if let Some(s) = overrides.server {
        raw.server.get_or_insert_default().overlay(s);
    }
    if let Some(s) = overrides.storage {
        raw.storage.get_or_insert_default().overlay(s);
    }
    if let Some(l) = overrides.logging {
        raw.logging.get_or_insert_default().overlay(l);
    }
    if let Some(r) = overrides.runtime {
        raw.runtime.get_or_insert_default().overlay(r);
    }
    if let Some(d) = overrides.discovery {
        raw.discovery.get_or_insert_default().overlay(d);
    }
    if let Some(k) = overrides.kubernetes {
        raw.kubernetes.get_or_insert_default().overlay(k);
    }
    Ok(())
}

/// Deserializes the variables through the `config` crate's environment source.
fn env_layer(
    vars: config::Map<String, String>,
    origin: &HashMap<String, String>,
) -> Result<RawEnv, ConfigError> {
    if vars.is_empty() {
        return Ok(RawEnv::default());
    }
    let source = config::Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
        .prefix_separator("_")
        .separator(ENV_SEPARATOR)
        .source(Some(vars));
    let built = config::Config::builder()
        .add_source(source)
        .build()
        .map_err(|e| ConfigError::Env {
            var: "CROWSNEST_*".to_owned(),
            message: e.to_string(),
        })?;
    serde_path_to_error::deserialize(built).map_err(|e| {
        let path = display_path(&e.path().to_string());
        // A variable at or below the failing path names the culprit.
        let var = origin
            .iter()
            .filter(|(p, _)| **p == path || p.starts_with(&format!("{path}.")))
            .map(|(_, v)| v.clone())
            .min()
            .unwrap_or_else(|| {
                format!(
                    "{ENV_PREFIX}{}",
                    path.to_ascii_uppercase().replace('.', ENV_SEPARATOR)
                )
            });
        ConfigError::Env {
            var,
            message: format!(
                "{path}: {}",
                with_hint(strip_config_key(e.into_inner().to_string()))
            ),
        }
    })
}

/// The `config` crate appends " for key `…`" to its messages; we name the
/// variable ourselves.
fn strip_config_key(message: String) -> String {
    match message.rfind(" for key `") {
        Some(i) if message.ends_with('`') => message[..i].to_owned(),
        _ => message,
    }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}
