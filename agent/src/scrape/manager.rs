//! Runs one loop per target of every job and keeps them in line with the
//! configuration across reloads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::fetch::Source;
use super::ingest::IngestRules;
use super::metrics::ScrapeMetrics;
use super::scrape_loop::{ScrapeLoop, TargetStatus};
use super::target::{Target, resolve, resolve_discovered};
use crate::config::ScrapeConfig;
use crate::http::{HttpClient, HttpError};
use crate::model::{Labels, SampleSink};
use crate::relabel::Rules;

/// A job could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The job's HTTP client could not be built (bad CA, cert or key).
    #[error("scrape_configs job {job:?}: {source}")]
    Client {
        /// Job name.
        job: String,
        /// Why.
        source: HttpError,
    },
}

struct RunningTarget {
    // Identity of the target (URL, labels, timing): discovery diffs by it.
    key: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    status: Arc<Mutex<TargetStatus>>,
}

struct Job {
    // Debug rendering of the job's config: a job is restarted only when it changes.
    fingerprint: String,
    targets: Vec<RunningTarget>,
    // Kept to re-plan the job's targets when discovery changes them.
    config: Option<Box<ScrapeConfig>>,
}

/// A target about to get its loop.
struct PlannedTarget {
    target: Target,
    source: Source,
    rules: IngestRules,
    body_limit: u64,
}

/// What `apply` does with a job.
enum Plan {
    /// Unchanged: leave it running.
    Keep,
    /// New or changed: (re)start it with these targets (and its config, for
    /// jobs whose targets discovery may change).
    Start(Vec<PlannedTarget>, Option<Box<ScrapeConfig>>),
}

/// Resolves a job's static and discovered targets and builds its client
/// (the only fallible step). Identical targets (e.g. two ports of one pod
/// relabeled to the same address) are scraped once, as in Prometheus.
fn plan_job(
    cfg: &ScrapeConfig,
    discovered: &[Labels],
    keep_exemplars: bool,
) -> Result<Vec<PlannedTarget>, ManagerError> {
    let client = HttpClient::new(&cfg.http).map_err(|source| ManagerError::Client {
        job: cfg.job_name.clone(),
        source,
    })?;
    let mut resolved = resolve(cfg);
    resolve_discovered(cfg, discovered, &mut resolved);
    for e in &resolved.errors {
        warn!(job = %cfg.job_name, error = %e, "target skipped");
    }
    let mut seen = std::collections::HashSet::new();
    resolved.targets.retain(|t| seen.insert(target_key(t)));
    Ok(resolved
        .targets
        .into_iter()
        .map(|target| PlannedTarget {
            rules: IngestRules {
                target_labels: target.labels.clone(),
                honor_labels: cfg.honor_labels,
                honor_timestamps: cfg.honor_timestamps,
                metric_relabel: cfg.metric_relabel_configs.clone(),
                sample_limit: cfg.sample_limit,
                label_limit: cfg.label_limit,
                keep_exemplars,
            },
            target,
            source: Source::Http(client.clone()),
            body_limit: cfg.body_size_limit,
        })
        .collect())
}

fn target_key(t: &Target) -> String {
    format!("{t:?}")
}

fn plan_self(s: &SelfScrape) -> PlannedTarget {
    PlannedTarget {
        rules: IngestRules {
            target_labels: s.target.labels.clone(),
            honor_labels: false,
            honor_timestamps: true,
            metric_relabel: Rules::default(),
            sample_limit: 0,
            label_limit: 0,
            // The agent's own metrics carry no exemplars.
            keep_exemplars: false,
        },
        target: s.target.clone(),
        source: Source::Registry(s.registry.clone()),
        body_limit: 0,
    }
}

/// The agent's own metrics, scraped in-process like any target.
#[derive(Clone)]
pub struct SelfScrape {
    /// The registry to read.
    pub registry: Arc<Registry>,
    /// Target labels (`job="crowsnest"`, `instance=…`).
    pub target: Target,
}

/// Owns every scrape loop.
pub struct ScrapeManager {
    sink: Arc<dyn SampleSink>,
    metrics: ScrapeMetrics,
    jobs: BTreeMap<String, Job>,
    statuses: Arc<RwLock<Vec<Arc<Mutex<TargetStatus>>>>>,
    // Discovered target label sets per job (before relabeling).
    discovered: BTreeMap<String, Vec<Labels>>,
    // Some remote-write endpoint sends exemplars, so scrapes keep them.
    keep_exemplars: bool,
}

/// A cheap handle that reads target statuses while the manager runs.
#[derive(Clone)]
pub struct StatusBoard {
    statuses: Arc<RwLock<Vec<Arc<Mutex<TargetStatus>>>>>,
}

impl StatusBoard {
    /// A snapshot of every target's status, ordered by job then instance.
    pub fn snapshot(&self) -> Vec<TargetStatus> {
        let Ok(list) = self.statuses.read() else {
            return Vec::new();
        };
        let mut out: Vec<TargetStatus> = list
            .iter()
            .filter_map(|s| s.lock().ok().map(|s| s.clone()))
            .collect();
        out.sort_by(|a, b| (&a.job, &a.instance).cmp(&(&b.job, &b.instance)));
        out
    }
}

impl ScrapeManager {
    /// A manager delivering to `sink`, with its metrics in `registry`.
    pub fn new(sink: Arc<dyn SampleSink>, registry: &mut Registry) -> Self {
        Self {
            sink,
            metrics: ScrapeMetrics::register(registry),
            jobs: BTreeMap::new(),
            statuses: Arc::default(),
            discovered: BTreeMap::new(),
            keep_exemplars: false,
        }
    }

    /// Whether scrapes keep exemplars (true when any remote-write endpoint
    /// has `send_exemplars`). Takes effect at the next [`Self::apply`], which
    /// restarts the jobs when it changed.
    pub fn set_keep_exemplars(&mut self, keep: bool) {
        self.keep_exemplars = keep;
    }

    /// Handle for status pages.
    pub fn status_board(&self) -> StatusBoard {
        StatusBoard {
            statuses: self.statuses.clone(),
        }
    }

    /// Starts, restarts or stops jobs so they match `configs`. Jobs whose
    /// config did not change keep running (and keep their series caches).
    /// On error nothing is changed.
    pub async fn apply(
        &mut self,
        configs: &[ScrapeConfig],
        self_scrape: Option<&SelfScrape>,
    ) -> Result<(), ManagerError> {
        let mut wanted: BTreeMap<String, (String, Plan)> = BTreeMap::new();
        for cfg in configs {
            let fingerprint = format!("{cfg:?} keep_exemplars={}", self.keep_exemplars);
            let plan = if self.is_running(&cfg.job_name, &fingerprint) {
                Plan::Keep
            } else {
                let found = self
                    .discovered
                    .get(&cfg.job_name)
                    .map_or(&[][..], Vec::as_slice);
                Plan::Start(
                    plan_job(cfg, found, self.keep_exemplars)?,
                    Some(Box::new(cfg.clone())),
                )
            };
            wanted.insert(cfg.job_name.clone(), (fingerprint, plan));
        }
        if let Some(s) = self_scrape {
            let fingerprint = format!("{:?}", s.target);
            let plan = if self.is_running(&s.target.job, &fingerprint) {
                Plan::Keep
            } else {
                Plan::Start(vec![plan_self(s)], None)
            };
            wanted.insert(s.target.job.clone(), (fingerprint, plan));
        }

        // Stop jobs that are gone or changed, then start the new ones.
        let mut stopping = Vec::new();
        let names: Vec<String> = self.jobs.keys().cloned().collect();
        for name in names {
            if matches!(wanted.get(&name), Some((_, Plan::Keep))) {
                continue;
            }
            if let Some(job) = self.jobs.remove(&name) {
                info!(job = %name, "stopping scrape job");
                stopping.extend(job.targets);
            }
        }
        stop_all(stopping).await;
        self.discovered.retain(|job, _| wanted.contains_key(job));
        for (name, (fingerprint, plan)) in wanted {
            let Plan::Start(planned, config) = plan else {
                continue;
            };
            info!(job = %name, targets = planned.len(), "starting scrape job");
            let targets = planned.into_iter().map(|p| self.spawn(p)).collect();
            self.jobs.insert(
                name,
                Job {
                    fingerprint,
                    targets,
                    config,
                },
            );
        }
        self.publish_statuses();
        Ok(())
    }

    /// Replaces the discovered targets of `job` (label sets with
    /// `__address__` and `__meta_*` labels, before relabeling). Only the
    /// difference is applied: unchanged targets keep running (and their
    /// series caches), vanished ones stop (marking their series stale), new
    /// ones start. Discovery for a job not (yet) configured is kept for
    /// when it is.
    pub async fn set_discovered(&mut self, job: &str, targets: Vec<Labels>) {
        let Some(config) = self.jobs.get(job).and_then(|j| j.config.clone()) else {
            self.discovered.insert(job.to_owned(), targets);
            return;
        };
        let planned = match plan_job(&config, &targets, self.keep_exemplars) {
            Ok(p) => p,
            Err(e) => {
                warn!(job, error = %e, "discovered targets not applied");
                return;
            }
        };
        self.discovered.insert(job.to_owned(), targets);
        let Some(running) = self.jobs.get_mut(job) else {
            return;
        };
        let mut old: BTreeMap<String, RunningTarget> = std::mem::take(&mut running.targets)
            .into_iter()
            .map(|t| (t.key.clone(), t))
            .collect();
        let mut kept = Vec::new();
        let mut new = Vec::new();
        for p in planned {
            match old.remove(&target_key(&p.target)) {
                Some(t) => kept.push(t),
                None => new.push(p),
            }
        }
        let (started, stopped) = (new.len(), old.len());
        stop_all(old.into_values().collect()).await;
        kept.extend(new.into_iter().map(|p| self.spawn(p)));
        if let Some(running) = self.jobs.get_mut(job) {
            running.targets = kept;
        }
        if started + stopped > 0 {
            info!(job, started, stopped, "discovered targets changed");
        }
        self.publish_statuses();
    }

    /// Jobs that discover targets from Kubernetes, with their config.
    pub fn kubernetes_sd_jobs(&self) -> Vec<(String, crate::config::KubernetesSdConfig)> {
        self.jobs
            .iter()
            .filter_map(|(name, j)| j.config.as_ref().map(|c| (name, c)))
            .flat_map(|(name, c)| {
                c.kubernetes_sd_configs
                    .iter()
                    .map(move |sd| (name.clone(), sd.clone()))
            })
            .collect()
    }

    fn is_running(&self, job: &str, fingerprint: &str) -> bool {
        self.jobs
            .get(job)
            .is_some_and(|j| j.fingerprint == fingerprint)
    }

    fn spawn(&self, p: PlannedTarget) -> RunningTarget {
        let key = target_key(&p.target);
        let scrape = ScrapeLoop::new(
            p.target,
            p.source,
            p.rules,
            p.body_limit,
            self.sink.clone(),
            self.metrics.clone(),
        );
        let status = scrape.status();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(scrape.run(stop_rx));
        RunningTarget {
            key,
            stop,
            task,
            status,
        }
    }

    fn publish_statuses(&self) {
        let all = self
            .jobs
            .values()
            .flat_map(|j| j.targets.iter().map(|t| t.status.clone()))
            .collect();
        if let Ok(mut s) = self.statuses.write() {
            *s = all;
        }
    }

    /// Stops every loop; each marks its series stale on the way out.
    pub async fn shutdown(mut self) {
        let all: Vec<RunningTarget> = std::mem::take(&mut self.jobs)
            .into_values()
            .flat_map(|j| j.targets)
            .collect();
        stop_all(all).await;
        self.publish_statuses();
    }
}

async fn stop_all(targets: Vec<RunningTarget>) {
    for t in &targets {
        // A send error only means the loop already ended.
        let _ = t.stop.send(true);
    }
    for t in targets {
        if let Err(e) = t.task.await {
            warn!(error = %e, "scrape loop ended abnormally");
        }
    }
}

/// The target of the agent's own metrics: `job="crowsnest"` and an
/// `instance` of `<node>:<port>` so every node's agent is distinct. The URL
/// is what an external Prometheus would scrape; the in-process scrape reads
/// the registry directly.
pub fn self_target(
    node: &str,
    port: u16,
    interval: std::time::Duration,
) -> Result<Target, url::ParseError> {
    let instance = format!("{node}:{port}");
    Ok(Target {
        job: crate::config::SELF_JOB.to_owned(),
        url: url::Url::parse(&format!("http://127.0.0.1:{port}/metrics"))?,
        labels: Labels::from_pairs([
            ("job", crate::config::SELF_JOB),
            ("instance", instance.as_str()),
        ]),
        interval,
        timeout: interval,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::Sample;
    use crate::scrape::target::tests::job;

    struct Discard;
    impl SampleSink for Discard {
        fn append(&self, _: Vec<Sample>) {}
    }

    fn named(name: &str) -> ScrapeConfig {
        // Port 1 refuses connections: the loops run without a real target.
        let mut cfg = job(&["127.0.0.1:1"]);
        cfg.job_name = name.to_owned();
        cfg
    }

    fn task_id(m: &ScrapeManager, job: &str) -> tokio::task::Id {
        m.jobs[job].targets[0].task.id()
    }

    #[tokio::test]
    async fn reload_keeps_unchanged_jobs_restarts_changed_and_stops_removed() {
        let mut registry = Registry::default();
        let mut m = ScrapeManager::new(Arc::new(Discard), &mut registry);
        m.apply(&[named("a"), named("b"), named("c")], None)
            .await
            .expect("apply");
        let (a, c) = (task_id(&m, "a"), task_id(&m, "c"));

        let mut changed = named("c");
        changed.scrape_interval = Duration::from_secs(30);
        m.apply(&[named("a"), changed], None).await.expect("reload");

        assert!(!m.jobs.contains_key("b"), "removed job stopped");
        assert_eq!(task_id(&m, "a"), a, "unchanged job keeps its loop");
        assert!(!m.jobs["a"].targets[0].task.is_finished());
        assert_ne!(task_id(&m, "c"), c, "changed job restarted");
        let jobs: Vec<String> = m
            .status_board()
            .snapshot()
            .into_iter()
            .map(|s| s.job)
            .collect();
        assert_eq!(jobs, ["a", "c"]);
        m.shutdown().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod discovery_tests {
    use super::*;
    use crate::model::Sample;
    use crate::scrape::target::tests::job;

    struct Discard;
    impl SampleSink for Discard {
        fn append(&self, _: Vec<Sample>) {}
    }

    fn found(addresses: &[&str]) -> Vec<Labels> {
        addresses
            .iter()
            .map(|a| Labels::from_pairs([("__address__", *a)]))
            .collect()
    }

    fn running(m: &ScrapeManager, name: &str) -> Vec<(String, Arc<Mutex<TargetStatus>>)> {
        m.jobs[name]
            .targets
            .iter()
            .map(|t| (t.key.clone(), t.status.clone()))
            .collect()
    }

    #[tokio::test]
    async fn discovered_targets_are_diffed_not_restarted() {
        let mut registry = Registry::default();
        let mut m = ScrapeManager::new(Arc::new(Discard), &mut registry);
        let mut cfg = job(&[]);
        cfg.static_configs.clear();
        // Discovery may arrive before the job is configured: it is kept.
        m.set_discovered("node", found(&["127.0.0.1:1", "127.0.0.1:2"]))
            .await;
        m.apply(std::slice::from_ref(&cfg), None).await.unwrap();
        let before = running(&m, "node");
        assert_eq!(before.len(), 2);
        // One target stays, one goes, one comes; duplicates collapse.
        m.set_discovered(
            "node",
            found(&["127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:3"]),
        )
        .await;
        let after = running(&m, "node");
        assert_eq!(after.len(), 2);
        let kept = after
            .iter()
            .find(|(k, _)| k.contains("127.0.0.1:2"))
            .unwrap();
        let was = before
            .iter()
            .find(|(k, _)| k.contains("127.0.0.1:2"))
            .unwrap();
        assert!(
            Arc::ptr_eq(&kept.1, &was.1),
            "the unchanged target kept its loop"
        );
        assert!(after.iter().any(|(k, _)| k.contains("127.0.0.1:3")));
        assert!(!after.iter().any(|(k, _)| k.contains("127.0.0.1:1")));
        assert_eq!(m.status_board().snapshot().len(), 2);
        // A reload with the same config keeps everything.
        m.apply(std::slice::from_ref(&cfg), None).await.unwrap();
        assert!(Arc::ptr_eq(&running(&m, "node")[0].1, &after[0].1));
        m.shutdown().await;
    }
}
