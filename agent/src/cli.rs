//! Command-line interface, in the spirit of promtool.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crowsnest::config;
use crowsnest::http::HttpClient;
use crowsnest::model::Labels;
use crowsnest::relabel::{RelabelConfig, Rules};
use crowsnest::scrape::fetch::Source;
use crowsnest::scrape::ingest::{IngestRules, SeriesCache, ingest};
use crowsnest::scrape::parse::{self, Format};
use crowsnest::scrape::target::populate;

/// crowsnest: Kubernetes node agent (scrape, relabel, remote write).
#[derive(Debug, Parser)]
#[command(name = "crowsnest", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent.
    Run {
        /// YAML config file; built-in defaults when omitted.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config file or an exposition.
    #[command(subcommand)]
    Check(Check),
    /// Debugging helpers.
    #[command(subcommand)]
    Debug(Debug),
    /// Print the control-plane targets discovery finds on this node and how it would scrape them.
    Discover {
        /// Config file whose `discovery:` and `scrape_configs:` to use.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Also scrape each target once and print the result.
        #[arg(long)]
        scrape: bool,
    },
    /// Scrape one URL through parse and relabel and print the series that would be sent.
    Scrape {
        /// Target URL, e.g. http://127.0.0.1:9100/metrics.
        url: String,
        /// Config file whose job settings (TLS, auth, relabeling, limits) to use.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Job of the config file to use (default: the first).
        #[arg(long)]
        job: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum Check {
    /// Check a config file; exit 0 when valid.
    Config {
        /// The file.
        file: PathBuf,
    },
    /// Check an exposition read from standard input; exit 1 with line:column on errors.
    Metrics {
        /// Exposition format.
        #[arg(long, value_enum, default_value_t = FormatArg::Prometheus)]
        format: FormatArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Prometheus,
    Openmetrics,
}

#[derive(Debug, Subcommand)]
enum Debug {
    /// Apply a `relabel_configs:` list to a label set.
    Relabel {
        /// YAML file holding `relabel_configs:`.
        #[arg(long, short)]
        config: PathBuf,
        /// Input labels, e.g. '{__name__="up",job="x"}'.
        #[arg(long)]
        labels: String,
    },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => run_agent(config),
        Command::Check(Check::Config { file }) => {
            let cfg = config::load(Some(&file))?;
            println!(
                "{}: OK ({} scrape jobs, {} remote_write endpoints)",
                file.display(),
                cfg.scrape_configs.len(),
                cfg.remote_write.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(Check::Metrics { format }) => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading standard input")?;
            let format = match format {
                FormatArg::Prometheus => Format::Prometheus,
                FormatArg::Openmetrics => Format::OpenMetrics,
            };
            match parse::validate(&body, format) {
                Ok(stats) => {
                    println!(
                        "OK: {} samples in {} families",
                        stats.samples, stats.families
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Debug(Debug::Relabel { config, labels }) => debug_relabel(&config, &labels),
        Command::Scrape { url, config, job } => scrape(&url, config.as_deref(), job.as_deref()),
        Command::Discover { config, scrape } => crate::discover::run(config.as_deref(), scrape),
    }
}

fn run_agent(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = config::load(path.as_deref())?;
    let log = crowsnest::telemetry::init_logging(&cfg.logging.level, cfg.logging.format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.runtime.worker_threads)
        .enable_all()
        .thread_name("crowsnest")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(crowsnest::app::run(path, cfg, log))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelabelFile {
    relabel_configs: Vec<RelabelConfig>,
}

fn debug_relabel(path: &Path, labels: &str) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: RelabelFile = serde_yaml::from_str(&text)
        .with_context(|| format!("{}: expected `relabel_configs:` list", path.display()))?;
    let rules =
        Rules::compile(&file.relabel_configs).with_context(|| path.display().to_string())?;
    let pairs = parse::parse_label_set(labels).context("--labels")?;
    let mut set = Labels::from_pairs(pairs);
    if rules.process(&mut set) {
        println!("{}", render(&set));
    } else {
        println!("dropped");
    }
    Ok(ExitCode::SUCCESS)
}

/// `{a="b", c="d"}` with every label, `__name__` included, in byte order.
fn render(labels: &Labels) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn scrape(url: &str, config_path: Option<&Path>, job: Option<&str>) -> anyhow::Result<ExitCode> {
    let parsed = url::Url::parse(url).with_context(|| format!("invalid URL {url:?}"))?;
    let host = parsed.host_str().context("URL has no host")?;
    let address = match parsed.port_or_known_default() {
        Some(p) if host.contains(':') => format!("[{host}]:{p}"),
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let cfg = match config_path {
        Some(p) => config::load(Some(p))?,
        None => config::load_from_str(
            &format!(
                "scrape_configs:\n  - job_name: scrape\n    static_configs: [{{targets: [{address:?}]}}]\n"
            ),
            &[],
        )?,
    };
    let job_cfg = match job {
        Some(name) => cfg.scrape_configs.iter().find(|j| j.job_name == name),
        None => cfg.scrape_configs.first(),
    }
    .context("no matching job in the config")?;
    let labels = Labels::from_pairs([
        ("__address__", address.as_str()),
        ("__scheme__", parsed.scheme()),
        ("__metrics_path__", parsed.path()),
    ]);
    let Some(target) = populate(job_cfg, labels)? else {
        println!("target dropped by relabel_configs");
        return Ok(ExitCode::SUCCESS);
    };
    let rules = IngestRules {
        target_labels: target.labels.clone(),
        honor_labels: job_cfg.honor_labels,
        honor_timestamps: job_cfg.honor_timestamps,
        metric_relabel: job_cfg.metric_relabel_configs.clone(),
        sample_limit: job_cfg.sample_limit,
        label_limit: job_cfg.label_limit,
        keep_exemplars: false,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let fetched = runtime.block_on(async {
        let client = HttpClient::new(&job_cfg.http)?;
        anyhow::Ok(
            Source::Http(client)
                .fetch(&parsed, job_cfg.scrape_timeout, job_cfg.body_size_limit)
                .await?,
        )
    })?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_millis();
    let mut out = Vec::new();
    let stats = ingest(
        &mut SeriesCache::default(),
        &rules,
        &fetched.body,
        fetched.format,
        i64::try_from(now)?,
        &mut out,
    )?;
    for s in &out {
        println!("{} {} {}", s.series.labels(), s.value, s.timestamp_ms);
    }
    if stats.duplicates > 0 {
        eprintln!(
            "warning: {} duplicate samples were dropped",
            stats.duplicates
        );
    }
    eprintln!(
        "{} samples scraped, {} after metric relabeling",
        stats.scraped, stats.post_relabel
    );
    Ok(ExitCode::SUCCESS)
}
