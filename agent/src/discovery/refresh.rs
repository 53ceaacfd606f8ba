//! The periodic side of discovery: run every source, publish what was found
//! (status board, gauge, one log line when it changes) and hand the app the
//! full job list to apply.

use std::sync::{Arc, RwLock};

use prometheus_client::registry::Registry;
use tracing::{error, info, warn};

use super::jobs::{merge, scrape_configs};
use super::manifest::ManifestError;
use super::{Discovered, DiscoveredStatus, DiscoveryMetrics, Source, dedup, discover};
use crate::config::{Config, DiscoveryConfig, ScrapeConfig};
use crate::http::HttpClient;
use crate::kube::PodRef;

/// A cheap handle the status page reads discovered targets from.
#[derive(Clone, Default)]
pub struct DiscoveryBoard(Arc<RwLock<Vec<DiscoveredStatus>>>);

impl DiscoveryBoard {
    /// The targets of the last discovery pass.
    pub fn snapshot(&self) -> Vec<DiscoveredStatus> {
        self.0.read().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Runs discovery passes and remembers what the last one reported.
pub struct Refresher {
    metrics: DiscoveryMetrics,
    board: DiscoveryBoard,
    // What was last logged: a pass that finds the same logs nothing.
    last_summary: String,
    // Targets probes found earlier (see `keep_probed`).
    probed: Vec<Discovered>,
}

impl Refresher {
    /// Registers the discovery self-metrics.
    pub fn new(registry: &mut Registry) -> Self {
        Self {
            metrics: DiscoveryMetrics::register(registry),
            board: DiscoveryBoard::default(),
            last_summary: String::new(),
            probed: Vec::new(),
        }
    }

    /// The handle for the status page.
    pub fn board(&self) -> DiscoveryBoard {
        self.board.clone()
    }

    /// Runs one pass and returns the user's jobs merged with the discovered
    /// ones (see [`merge`]); `node` is the `node` label of discovered targets.
    /// `pods` are this node's pods from the metadata watch (empty without it).
    pub async fn scrape_configs(
        &mut self,
        config: &Config,
        node: &str,
        pods: &[PodRef],
    ) -> Vec<ScrapeConfig> {
        let mut report = discover(&config.discovery, pods).await;
        report.targets = self.keep_probed(report.targets, &config.discovery);
        self.metrics.record(&report.targets);
        let mut statuses: Vec<DiscoveredStatus> =
            report.targets.iter().map(Discovered::status).collect();
        let jobs = match scrape_configs(&report.targets, &config.discovery, &config.global, node) {
            Ok(jobs) => jobs,
            Err(e) => {
                error!(error = %e, "discovered jobs not applied: a curated metric set does not compile");
                Vec::new()
            }
        };
        // A job whose client cannot be built (a certificate named by a
        // manifest but not mounted into the agent) must not stop the others:
        // it is left out and its targets say why.
        let jobs: Vec<ScrapeConfig> = jobs
            .into_iter()
            .filter(|job| match HttpClient::new(&job.http) {
                Ok(_) => true,
                Err(e) => {
                    for s in statuses.iter_mut().filter(|s| s.component == job.job_name) {
                        s.note = Some(format!("not scraped: {e}"));
                    }
                    false
                }
            })
            .collect();
        let merged = merge(&config.scrape_configs, jobs);
        // Say so on the status page when the user's own jobs cover a target.
        let discovered_jobs = &merged[config.scrape_configs.len()..];
        for s in statuses.iter_mut().filter(|s| s.note.is_none()) {
            let scraped = discovered_jobs.iter().any(|j| {
                j.job_name == s.component
                    && j.static_configs
                        .iter()
                        .any(|g| g.targets.contains(&s.address))
            });
            if !scraped {
                s.note = Some(
                    "not scraped by discovery: a scrape_configs job has this job name or address"
                        .to_owned(),
                );
            }
        }
        self.publish(statuses, &report.problems);
        merged
    }

    /// A component a probe found once stays a target while it is enabled and
    /// its port is still configured, even when it stops answering: a dead
    /// kube-proxy must show as `up=0`, not vanish with its series. (Manifest
    /// targets need no such memory: the manifest stays while the pod is down.)
    fn keep_probed(&mut self, targets: Vec<Discovered>, cfg: &DiscoveryConfig) -> Vec<Discovered> {
        let mut targets = targets;
        if cfg.enabled {
            for old in &self.probed {
                let c = cfg.component(old.component());
                let port = old
                    .found
                    .address
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok());
                let still_wanted = c.enabled && port.is_some_and(|p| c.ports.contains(&p));
                if still_wanted && !targets.iter().any(|t| t.component() == old.component()) {
                    let mut found = old.found.clone();
                    found.note = Some(
                        "did not answer the last probe; kept as a target so that up=0 shows it is down"
                            .to_owned(),
                    );
                    // Rebuilt so that changed settings (token file, CA) apply.
                    targets.push(Discovered::new(found, Source::Probe, cfg));
                }
            }
        }
        let targets = dedup(targets);
        self.probed = targets
            .iter()
            .filter(|t| t.source == Source::Probe)
            .cloned()
            .collect();
        targets
    }

    /// Updates the board, and logs when the result differs from the last pass.
    fn publish(&mut self, statuses: Vec<DiscoveredStatus>, problems: &[ManifestError]) {
        let summary = format!("{statuses:?}{problems:?}");
        if summary != self.last_summary {
            for s in &statuses {
                info!(component = s.component, source = s.source, address = %s.address, scheme = s.scheme, auth = s.auth, insecure_skip_verify = s.insecure_skip_verify, origin = %s.origin, "discovered");
                if let Some(note) = &s.note {
                    warn!(component = s.component, address = %s.address, note = %note, "discovered target needs attention");
                }
            }
            for p in problems {
                warn!(reason = p.kind(), error = %p, "static pod manifest skipped");
            }
            info!(targets = statuses.len(), "discovered targets changed");
            self.last_summary = summary;
        }
        if let Ok(mut board) = self.board.0.write() {
            *board = statuses;
        }
    }
}
