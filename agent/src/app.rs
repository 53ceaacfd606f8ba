//! Wires the pipeline from a validated config, supervises it, reloads it on
//! SIGHUP and shuts it down on SIGTERM/SIGINT.
//!
//! ```text
//! discovery ──jobs──┐                    Kubernetes (node's pods) ─┐ pod labels
//! scrape_configs ───┴─> ScrapeManager ──samples──> Enricher ──> RemoteWriter (SampleSink) ──> backends
//!   pod discovery ──targets──┘  └─ self-scrape        ^
//! Collectors (eBPF) ──samples─────────────────────────┘
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{RwLock, watch};
use tracing::{error, info, warn};

use crate::collectors::Collectors;
use crate::config::{self, Config, ConfigError, ScrapeConfig};
use crate::discovery::{DiscoveryBoard, Refresher};
use crate::enrich::{EnrichMetrics, Enricher, HoldConfig, LabelPlan};
use crate::kube::{KubeMetrics, Kubernetes, discovery as pod_discovery};
use crate::remote_write::{RemoteWriteError, RemoteWriter};
use crate::scrape::manager::ManagerError;
use crate::scrape::{ScrapeManager, SelfScrape, StatusBoard, self_target};
use crate::server::{AgentStatus, Server, ServerError, State, StatusSource};
use crate::telemetry::{self, LogHandle};

/// How long queued samples may take to flush on shutdown.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(10);
/// Pod changes within this window become one discovery update.
const POD_DISCOVERY_DEBOUNCE: Duration = Duration::from_millis(500);

/// The agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Remote write could not start.
    #[error(transparent)]
    RemoteWrite(#[from] RemoteWriteError),
    /// A scrape job could not start.
    #[error(transparent)]
    Scrape(#[from] ManagerError),
    /// The HTTP server could not start.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// The node's name: `NODE_NAME` (set from the downward API in a DaemonSet),
/// else the kernel's hostname.
pub fn node_name() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

struct AppStatus {
    node: String,
    started: Instant,
    ready: Arc<AtomicBool>,
    targets: StatusBoard,
    collectors: Arc<Collectors>,
    discovered: DiscoveryBoard,
    remote: Arc<RwLock<Option<RemoteWriter>>>,
    kube: Arc<Kubernetes>,
}

impl StatusSource for AppStatus {
    fn snapshot(&self) -> Pin<Box<dyn Future<Output = AgentStatus> + Send + '_>> {
        Box::pin(async move {
            let mut s = AgentStatus::new(&self.node, self.started.elapsed().as_secs_f64());
            s.ready = self.ready.load(Ordering::Acquire);
            s.targets = self.targets.snapshot();
            s.collectors = self.collectors.status();
            s.discovered = self.discovered.snapshot();
            if let Some(remote) = self.remote.read().await.as_ref() {
                s.remote_write = remote.status();
            }
            s.kubernetes = Some(self.kube.status());
            s
        })
    }
}

struct ReloadMetrics {
    successful: Gauge,
    last_success: Gauge,
}

impl ReloadMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self {
            successful: Gauge::default(),
            last_success: Gauge::default(),
        };
        registry.register(
            "crowsnest_config_last_reload_successful",
            "Whether the last configuration reload succeeded",
            m.successful.clone(),
        );
        registry.register(
            "crowsnest_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load",
            m.last_success.clone(),
        );
        m
    }

    fn record(&self, ok: bool) {
        self.successful.set(i64::from(ok));
        if ok {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            self.last_success
                .set(i64::try_from(now).unwrap_or(i64::MAX));
        }
    }
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(
    config_path: Option<PathBuf>,
    config: Config,
    log: LogHandle,
) -> Result<(), AppError> {
    let node = node_name();
    let mut registry = telemetry::base_registry();
    let reload_metrics = ReloadMetrics::register(&mut registry);
    let kube_metrics = KubeMetrics::register(&mut registry);
    let enrich_metrics = EnrichMetrics::register(&mut registry);
    let mut remote = RemoteWriter::with_storage(&mut registry, config.storage.path.clone());
    remote
        .apply(&config.remote_write, &config.global.external_labels)
        .await?;
    // Kubernetes metadata is read at start only (the watch keeps running
    // across reloads). Every producer writes through the enricher.
    let kube_node = config
        .kubernetes
        .node_name
        .clone()
        .unwrap_or_else(|| node.clone());
    let kube =
        Arc::new(Kubernetes::start(&config.kubernetes, kube_node.clone(), kube_metrics).await);
    let enricher = Enricher::spawn(
        remote.sink(),
        kube.store.clone(),
        LabelPlan::new(
            &kube_node,
            &config.kubernetes.pod_labels,
            kube.plain_host.is_some(),
        ),
        HoldConfig {
            hold: config.kubernetes.hold,
            max_samples: config.kubernetes.hold_max_samples,
            // eBPF series of pods are held until the first pod list (bounded),
            // so a restart has no unlabelled window.
            until_synced: kube
                .synced
                .clone()
                .map(|s| (s, Instant::now() + config.kubernetes.sync_timeout)),
        },
        enrich_metrics,
    );
    let mut scrapes = ScrapeManager::new(enricher.sink(), &mut registry);
    scrapes.set_keep_exemplars(sends_exemplars(&config));
    // Collectors load their eBPF programs now; one that fails is reported,
    // never fatal. Their settings take effect at start only.
    let collectors = Arc::new(Collectors::start(
        &config.collectors,
        enricher.sink(),
        &mut registry,
    ));
    let mut discovery = Refresher::new(&mut registry);
    let registry = Arc::new(registry);
    let remote = Arc::new(RwLock::new(Some(remote)));

    let listen = config.server.listen_address;
    let self_scrape =
        |cfg: &Config| match self_target(&node, listen.port(), cfg.global.scrape_interval) {
            Ok(target) => Some(SelfScrape {
                registry: registry.clone(),
                target,
            }),
            Err(e) => {
                warn!(error = %e, "the agent's own metrics will not be sent");
                None
            }
        };
    // One node name everywhere: discovery's own setting, else the one the
    // metadata watch uses, else NODE_NAME or the host name.
    let discovery_node = |cfg: &Config| {
        cfg.discovery
            .node_name
            .clone()
            .unwrap_or_else(|| kube_node.clone())
    };
    let jobs = discovery
        .scrape_configs(&config, &discovery_node(&config), &kube.store.pods())
        .await;
    scrapes
        .apply(
            &with_pod_jobs(jobs, &config, &kube),
            self_scrape(&config).as_ref(),
        )
        .await?;
    let mut pod_changes = kube.store.changes();
    discover_pods(&mut scrapes, &kube).await;

    let ready = Arc::new(AtomicBool::new(false));
    let state = State {
        registry: registry.clone(),
        ready: ready.clone(),
        status: Arc::new(AppStatus {
            node: node.clone(),
            started: Instant::now(),
            ready: ready.clone(),
            targets: scrapes.status_board(),
            collectors: collectors.clone(),
            discovered: discovery.board(),
            remote: remote.clone(),
            kube: kube.clone(),
        }),
    };
    let server = Server::bind(listen, state).await?;
    let (stop_server, stop_rx) = watch::channel(false);
    let server_task = tokio::spawn(server.serve(stop_rx));
    reload_metrics.record(true);
    ready.store(true, Ordering::Release);
    info!(node = %node, scrape_jobs = config.scrape_configs.len(), remote_write = config.remote_write.len(), "crowsnest is running");

    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(AppError::Signals)?;
    let mut config = config;
    let mut refresh = discovery_timer(&config);
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM received, shutting down"); break; }
            _ = int.recv() => { info!("SIGINT received, shutting down"); break; }
            _ = hup.recv() => {
                let new = reload(config_path.as_deref(), &log, &remote, &mut scrapes, &self_scrape, &mut discovery, &discovery_node, &kube).await;
                reload_metrics.record(new.is_some());
                if let Some(new) = new {
                    config = new;
                    refresh = discovery_timer(&config);
                }
                discover_pods(&mut scrapes, &kube).await;
            }
            _ = refresh.tick(), if config.discovery.enabled => {
                // Unchanged jobs keep running: the manager diffs by config.
                let jobs = discovery.scrape_configs(&config, &discovery_node(&config), &kube.store.pods()).await;
                if let Err(e) = scrapes.apply(&with_pod_jobs(jobs, &config, &kube), self_scrape(&config).as_ref()).await {
                    error!(error = %e, "discovery refresh: jobs not applied; keeping the previous ones");
                }
            }
            Ok(()) = pod_changes.changed() => {
                // Coalesce bursts (a rollout changes many pods at once).
                tokio::time::sleep(POD_DISCOVERY_DEBOUNCE).await;
                pod_changes.mark_unchanged();
                discover_pods(&mut scrapes, &kube).await;
                // kube-proxy and CoreDNS pods feed control-plane discovery too.
                refresh.reset_immediately();
            }
        }
    }

    ready.store(false, Ordering::Release);
    // Stop producers first so their stale markers are queued, then flush.
    collectors.stop();
    scrapes.shutdown().await;
    enricher.flush();
    if let Some(remote) = remote.write().await.take() {
        remote.shutdown(SHUTDOWN_FLUSH).await;
    }
    let _ = stop_server.send(true);
    if let Err(e) = server_task.await {
        warn!(error = %e, "server task ended abnormally");
    }
    info!("crowsnest stopped");
    Ok(())
}

/// The discovery refresh timer; its first tick (immediate) is consumed
/// because a pass has just run.
fn discovery_timer(config: &Config) -> tokio::time::Interval {
    let period = config.discovery.refresh_interval;
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer
}

/// `jobs` plus the chart's `kubernetes-pods` job when the pod watch runs.
fn with_pod_jobs(
    mut jobs: Vec<ScrapeConfig>,
    config: &Config,
    kube: &Kubernetes,
) -> Vec<ScrapeConfig> {
    if kube.plain_host.is_none()
        && let Some(job) = &config.kubernetes.annotation_job
        && !jobs.iter().any(|j| j.job_name == job.job_name)
    {
        jobs.push(job.clone());
    }
    jobs
}

/// Hands every `kubernetes_sd_configs` job the current pods of this node.
/// Scrapes keep exemplars only when some endpoint sends them.
fn sends_exemplars(config: &Config) -> bool {
    config.remote_write.iter().any(|rw| rw.send_exemplars)
}

async fn discover_pods(scrapes: &mut ScrapeManager, kube: &Kubernetes) {
    let jobs = scrapes.kubernetes_sd_jobs();
    if jobs.is_empty() {
        return;
    }
    let pods = kube.store.pods();
    let mut by_job: std::collections::BTreeMap<String, Vec<crate::model::Labels>> =
        std::collections::BTreeMap::new();
    for (job, sd) in jobs {
        by_job
            .entry(job)
            .or_default()
            .extend(pod_discovery::pod_targets(&pods, &sd.namespaces));
    }
    for (job, targets) in by_job {
        scrapes.set_discovered(&job, targets).await;
    }
}

/// Re-reads the config (and runs discovery again); on any error the running
/// pipeline is left as it was. Returns the new config when it was applied.
#[allow(
    clippy::too_many_arguments,
    reason = "a reload touches every stage; bundling them would only rename the list"
)]
async fn reload(
    path: Option<&std::path::Path>,
    log: &LogHandle,
    remote: &RwLock<Option<RemoteWriter>>,
    scrapes: &mut ScrapeManager,
    self_scrape: &impl Fn(&Config) -> Option<SelfScrape>,
    discovery: &mut Refresher,
    discovery_node: &impl Fn(&Config) -> String,
    kube: &Kubernetes,
) -> Option<Config> {
    info!("SIGHUP received, reloading the configuration");
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            log_reload_error(&e);
            return None;
        }
    };
    if let Err(e) = log.set_level(&config.logging.level) {
        warn!(error = %e, "log level not changed");
    }
    if let Some(remote) = remote.write().await.as_mut()
        && let Err(e) = remote
            .apply(&config.remote_write, &config.global.external_labels)
            .await
    {
        error!(error = %e, "reload: remote_write not applied; keeping the previous endpoints");
        return None;
    }
    let jobs = discovery
        .scrape_configs(&config, &discovery_node(&config), &kube.store.pods())
        .await;
    let jobs = with_pod_jobs(jobs, &config, kube);
    scrapes.set_keep_exemplars(sends_exemplars(&config));
    if let Err(e) = scrapes.apply(&jobs, self_scrape(&config).as_ref()).await {
        error!(error = %e, "reload: scrape_configs not applied; keeping the previous jobs");
        return None;
    }
    info!("configuration reloaded");
    Some(config)
}

fn log_reload_error(e: &ConfigError) {
    error!(error = %e, "reload: the new configuration is invalid; keeping the running one");
}
