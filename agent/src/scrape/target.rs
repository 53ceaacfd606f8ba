//! Scrape targets: static targets of a job, target relabeling and the final
//! URL and label set, with Prometheus' `PopulateLabels` rules.

use std::time::Duration;

use url::Url;

use crate::config::ScrapeConfig;
use crate::model::Labels;

/// A target after relabeling: where to scrape and the labels its series get.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The job the target belongs to.
    pub job: String,
    /// Full URL, including query parameters.
    pub url: Url,
    /// Labels added to every series of the target (`job`, `instance`, static
    /// and relabeled labels; never `__`-prefixed ones).
    pub labels: Labels,
    /// Scrape interval (may be changed per target by `__scrape_interval__`).
    pub interval: Duration,
    /// Scrape timeout (may be changed per target by `__scrape_timeout__`).
    pub timeout: Duration,
}

impl Target {
    /// The `instance` label (the address unless relabeling chose otherwise).
    pub fn instance(&self) -> &str {
        self.labels.get_or_empty("instance")
    }

    /// The URL with any userinfo removed, for status pages and logs.
    pub fn display_url(&self) -> String {
        let mut u = self.url.clone();
        // Setting empty credentials cannot fail for http(s) URLs.
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.to_string()
    }
}

/// Why a configured target could not become a scrape target.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    /// `__address__` is empty after relabeling.
    #[error("job {job:?}: a target has no address after relabeling (labels {labels})")]
    NoAddress {
        /// Job name.
        job: String,
        /// The labels after relabeling.
        labels: Labels,
    },
    /// The URL assembled from the labels does not parse.
    #[error("job {job:?}: target URL {url:?} is invalid: {reason}")]
    BadUrl {
        /// Job name.
        job: String,
        /// What was assembled.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// `__scrape_interval__` or `__scrape_timeout__` was relabeled to an invalid duration.
    #[error("job {job:?}: target label {label} has invalid duration {value:?}")]
    BadDuration {
        /// Job name.
        job: String,
        /// The label.
        label: &'static str,
        /// Its value.
        value: String,
    },
}

/// Result of resolving a job's configured targets.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Targets to scrape.
    pub targets: Vec<Target>,
    /// How many were dropped by `relabel_configs`.
    pub dropped: usize,
    /// Targets that could not be built (reported, not scraped).
    pub errors: Vec<TargetError>,
}

/// Resolves every static target of `cfg` into scrape targets.
pub fn resolve(cfg: &ScrapeConfig) -> Resolved {
    let mut out = Resolved::default();
    for group in &cfg.static_configs {
        for address in &group.targets {
            let mut labels = group.labels.clone();
            labels.set("__address__", address);
            match populate(cfg, labels) {
                Ok(Some(t)) => out.targets.push(t),
                Ok(None) => out.dropped += 1,
                Err(e) => out.errors.push(e),
            }
        }
    }
    out
}

/// Adds the targets of discovered label sets (each with `__address__`)
/// to `out`, through the same [`populate`] as static targets.
pub fn resolve_discovered(cfg: &ScrapeConfig, discovered: &[Labels], out: &mut Resolved) {
    for labels in discovered {
        match populate(cfg, labels.clone()) {
            Ok(Some(t)) => out.targets.push(t),
            Ok(None) => out.dropped += 1,
            Err(e) => out.errors.push(e),
        }
    }
}

/// Builds one target from its discovered labels (`__address__` and group
/// labels), exactly in the order Prometheus does it.
pub fn populate(cfg: &ScrapeConfig, mut labels: Labels) -> Result<Option<Target>, TargetError> {
    let job = cfg.job_name.clone();
    let interval = crate::config::format_duration(cfg.scrape_interval);
    let timeout = crate::config::format_duration(cfg.scrape_timeout);
    let defaults: [(&str, &str); 5] = [
        ("job", &cfg.job_name),
        ("__scrape_interval__", &interval),
        ("__scrape_timeout__", &timeout),
        ("__metrics_path__", &cfg.metrics_path),
        ("__scheme__", cfg.scheme.as_str()),
    ];
    for (name, value) in defaults {
        if labels.get(name).is_none() {
            labels.set(name, value);
        }
    }
    for (name, value) in first_param_values(&cfg.params) {
        let key = format!("__param_{name}");
        if labels.get(&key).is_none() {
            labels.set(&key, value);
        }
    }
    if !cfg.relabel_configs.process(&mut labels) {
        return Ok(None);
    }
    let Some(address) = labels.get("__address__").map(str::to_owned) else {
        return Err(TargetError::NoAddress { job, labels });
    };
    let scheme = labels.get_or_empty("__scheme__").to_owned();
    let address = with_default_port(&address, &scheme);
    labels.set("__address__", &address);

    let interval = parse_label_duration(&labels, "__scrape_interval__", &job)?;
    let timeout = parse_label_duration(&labels, "__scrape_timeout__", &job)?;

    let url = build_url(cfg, &labels, &scheme, &address).map_err(|(url, reason)| {
        TargetError::BadUrl {
            job: job.clone(),
            url,
            reason,
        }
    })?;
    if labels.get("instance").is_none() {
        labels.set("instance", &address);
    }
    // Internal labels steer the scrape; they never reach a series.
    labels.retain(|l| !l.name.starts_with("__"));
    Ok(Some(Target {
        job,
        url,
        labels,
        interval,
        timeout,
    }))
}

fn first_param_values(params: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (k, v) in params {
        if !seen.iter().any(|(n, _)| n == k) {
            seen.push((k, v));
        }
    }
    seen
}

/// Prometheus 2.x adds the scheme's default port when the address has none.
fn with_default_port(address: &str, scheme: &str) -> String {
    let has_port = match address.rsplit_once(':') {
        // `[::1]:80` has a port, `[::1]` and `::1` do not.
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        return address.to_owned();
    }
    let port = if scheme == "https" { 443 } else { 80 };
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

fn build_url(
    cfg: &ScrapeConfig,
    labels: &Labels,
    scheme: &str,
    address: &str,
) -> Result<Url, (String, String)> {
    let path = labels.get_or_empty("__metrics_path__");
    let raw = format!("{scheme}://{address}{path}");
    let mut url = Url::parse(&raw).map_err(|e| (raw.clone(), e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err((raw, "scheme must be http or https".to_owned()));
    }
    // Config params, with the first value of each replaced by its
    // `__param_<name>` label (which relabeling may have changed).
    let mut params: Vec<(String, String)> = cfg.params.clone();
    for l in labels.iter() {
        if let Some(name) = l.name.strip_prefix("__param_") {
            match params.iter_mut().find(|(k, _)| k == name) {
                Some(slot) => l.value.clone_into(&mut slot.1),
                None => params.push((name.to_owned(), l.value.to_owned())),
            }
        }
    }
    if !params.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in &params {
            q.append_pair(k, v);
        }
    }
    Ok(url)
}

fn parse_label_duration(
    labels: &Labels,
    label: &'static str,
    job: &str,
) -> Result<Duration, TargetError> {
    let value = labels.get_or_empty(label);
    crate::config::parse_duration(value).map_err(|_| TargetError::BadDuration {
        job: job.to_owned(),
        label,
        value: value.to_owned(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{HttpClientConfig, Scheme, StaticConfig};
    use crate::relabel::{RelabelConfig, Rules};

    pub(crate) fn job(targets: &[&str]) -> ScrapeConfig {
        ScrapeConfig {
            job_name: "node".to_owned(),
            scrape_interval: Duration::from_secs(15),
            scrape_timeout: Duration::from_secs(10),
            metrics_path: "/metrics".to_owned(),
            scheme: Scheme::Http,
            params: Vec::new(),
            static_configs: vec![StaticConfig {
                targets: targets.iter().map(|t| (*t).to_owned()).collect(),
                labels: Labels::from_pairs([("env", "prod")]),
            }],
            kubernetes_sd_configs: Vec::new(),
            honor_labels: false,
            honor_timestamps: true,
            http: HttpClientConfig::default(),
            sample_limit: 0,
            label_limit: 0,
            body_size_limit: 0,
            relabel_configs: Rules::default(),
            metric_relabel_configs: Rules::default(),
        }
    }

    fn rules(yaml: &str) -> Rules {
        let configs: Vec<RelabelConfig> = serde_yaml::from_str(yaml).expect("yaml");
        Rules::compile(&configs).expect("compile")
    }

    #[test]
    fn static_target_gets_job_instance_and_group_labels() {
        let r = resolve(&job(&["127.0.0.1:9100"]));
        assert_eq!(r.targets.len(), 1);
        let t = &r.targets[0];
        assert_eq!(t.url.as_str(), "http://127.0.0.1:9100/metrics");
        assert_eq!(
            t.labels,
            Labels::from_pairs([
                ("env", "prod"),
                ("instance", "127.0.0.1:9100"),
                ("job", "node")
            ])
        );
        assert_eq!(t.interval, Duration::from_secs(15));
    }

    #[test]
    fn default_port_follows_scheme() {
        let mut cfg = job(&["example.org", "[::1]", "[::1]:81"]);
        cfg.scheme = Scheme::Https;
        let urls: Vec<String> = resolve(&cfg)
            .targets
            .iter()
            .map(|t| t.url.to_string())
            .collect();
        assert_eq!(
            urls,
            [
                "https://example.org/metrics",
                "https://[::1]/metrics",
                "https://[::1]:81/metrics"
            ]
        );
        let instances: Vec<String> = resolve(&cfg)
            .targets
            .iter()
            .map(|t| t.instance().to_owned())
            .collect();
        assert_eq!(instances, ["example.org:443", "[::1]:443", "[::1]:81"]);
    }

    #[test]
    fn params_and_param_labels_build_the_query() {
        let mut cfg = job(&["h:1"]);
        cfg.params = vec![
            ("module".into(), "a".into()),
            ("module".into(), "b".into()),
            ("x".into(), "1".into()),
        ];
        cfg.relabel_configs = rules(
            "- {source_labels: [__address__], target_label: __param_target}\n- {target_label: __param_module, replacement: c}",
        );
        let t = &resolve(&cfg).targets[0];
        assert_eq!(
            t.url.as_str(),
            "http://h:1/metrics?module=c&module=b&x=1&target=h%3A1"
        );
    }

    #[test]
    fn relabeling_can_drop_rewrite_and_change_interval() {
        let mut cfg = job(&["a:1", "b:2"]);
        cfg.relabel_configs = rules(
            "- {source_labels: [__address__], regex: 'b:.*', action: drop}\n- {target_label: __scrape_interval__, replacement: 1m}\n- {target_label: __metrics_path__, replacement: /m}\n- {source_labels: [__address__], target_label: instance, regex: '(.*):.*', replacement: $1}",
        );
        let r = resolve(&cfg);
        assert_eq!(r.dropped, 1);
        let t = &r.targets[0];
        assert_eq!(t.url.as_str(), "http://a:1/m");
        assert_eq!(t.instance(), "a");
        assert_eq!(t.interval, Duration::from_secs(60));
        assert!(t.labels.iter().all(|l| !l.name.starts_with("__")));
    }

    #[test]
    fn empty_address_is_an_error() {
        let mut cfg = job(&["a:1"]);
        cfg.relabel_configs = rules("- {target_label: __address__, replacement: ''}");
        let r = resolve(&cfg);
        assert!(r.targets.is_empty());
        assert!(matches!(r.errors[0], TargetError::NoAddress { .. }));
    }
}
