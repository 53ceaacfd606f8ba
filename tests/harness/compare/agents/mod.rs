//! The agents under comparison, one adapter each (config, command line, readiness), all
//! scraping the same targets every second and remote-writing to the same kind of backend.

mod crowsnest;
mod prometheus;
mod vmagent;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::agent::Agent;
use crate::deps::{PROMETHEUS_BIN, VMAGENT_BIN};
use crate::http::HttpClient;
use crate::instance::{Instance, READY_TIMEOUT};
use crate::ports::with_free_port;
use crate::process::ChildProcess;

/// Job name of the synthetic targets in every agent's config.
pub const JOB: &str = "synth";

/// One of the compared agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// This project's agent.
    Crowsnest,
    /// VictoriaMetrics' vmagent, the reference the ratios are taken against.
    Vmagent,
    /// `prometheus --enable-feature=agent`.
    Prometheus,
}

impl AgentKind {
    /// All agents, in the default order.
    pub const ALL: [Self; 3] = [Self::Crowsnest, Self::Vmagent, Self::Prometheus];

    /// The name used in flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Crowsnest => "crowsnest",
            Self::Vmagent => "vmagent",
            Self::Prometheus => "prometheus",
        }
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AgentKind {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .with_context(|| {
                format!("unknown agent {text:?}: expected crowsnest, vmagent or prometheus")
            })
    }
}

/// Where each agent's binary is.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The crowsnest binary (a release build for meaningful numbers).
    pub crowsnest: PathBuf,
    /// vmagent.
    pub vmagent: PathBuf,
    /// Prometheus (run in agent mode).
    pub prometheus: PathBuf,
}

impl Binaries {
    /// `crowsnest` as given, vmagent and Prometheus from their Debian packages.
    pub fn with_crowsnest(crowsnest: PathBuf) -> Self {
        Self {
            crowsnest,
            vmagent: PathBuf::from(VMAGENT_BIN),
            prometheus: PathBuf::from(PROMETHEUS_BIN),
        }
    }

    /// The binary of `kind`.
    pub fn of(&self, kind: AgentKind) -> &Path {
        match kind {
            AgentKind::Crowsnest => &self.crowsnest,
            AgentKind::Vmagent => &self.vmagent,
            AgentKind::Prometheus => &self.prometheus,
        }
    }

    /// The first line `kind` prints for its version flag, else the version of the Debian
    /// package that installed it (Debian's vmagent prints an empty version).
    pub fn version(&self, kind: AgentKind) -> String {
        let flag = match kind {
            AgentKind::Vmagent => "-version",
            AgentKind::Crowsnest | AgentKind::Prometheus => "--version",
        };
        let binary = self.of(kind);
        let printed = first_line(Command::new(binary).arg(flag));
        if !printed.is_empty() {
            return printed;
        }
        let package =
            first_line(Command::new("dpkg-query").args(["-S", &binary.display().to_string()]));
        match package.split_once(':') {
            Some((package, _)) => {
                let version = first_line(Command::new("dpkg-query").args([
                    "-W",
                    "-f",
                    "${Version}",
                    package,
                ]));
                format!("{package} {version} (Debian package)")
            }
            None => "unknown".to_owned(),
        }
    }
}

fn first_line(command: &mut Command) -> String {
    command
        .output()
        .map(|out| {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            text.lines()
                .map(str::trim)
                .find(|line| !line.is_empty())
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default()
}

/// A started agent; stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub enum RunningAgent {
    /// crowsnest, through the integration tests' own launcher.
    Crowsnest(Box<Agent>),
    /// vmagent or Prometheus.
    Other(Instance),
}

impl RunningAgent {
    /// The agent's process.
    pub fn process(&mut self) -> &mut ChildProcess {
        match self {
            Self::Crowsnest(agent) => agent.instance().process(),
            Self::Other(instance) => instance.process(),
        }
    }
}

/// Starts `kind` scraping `targets` every second and remote-writing to `remote_write`,
/// and waits until it reports ready.
///
/// # Errors
/// When the config cannot be written, the agent cannot start, or it is not ready within
/// [`READY_TIMEOUT`].
pub async fn start(
    kind: AgentKind,
    binaries: &Binaries,
    targets: &[String],
    remote_write: &str,
) -> Result<RunningAgent> {
    let binary = binaries.of(kind);
    match kind {
        AgentKind::Crowsnest => {
            let config = crowsnest::config(targets, remote_write);
            let agent = Agent::start_binary(binary, &config).await?;
            Ok(RunningAgent::Crowsnest(Box::new(agent)))
        }
        AgentKind::Vmagent => {
            start_server(kind, |dir, port| {
                vmagent::command(binary, dir, port, targets, remote_write)
            })
            .await
        }
        AgentKind::Prometheus => {
            start_server(kind, |dir, port| {
                prometheus::command(binary, dir, port, targets, remote_write)
            })
            .await
        }
    }
}

/// What an adapter hands back: the command to run and the path that answers 200 when ready.
struct Launch {
    command: Command,
    ready_path: &'static str,
}

/// Starts a server-shaped agent on a free port in a fresh directory (config, data, log).
async fn start_server(
    kind: AgentKind,
    launch: impl Fn(&Path, u16) -> Result<Launch>,
) -> Result<RunningAgent> {
    with_free_port(|port| {
        let launch = &launch;
        async move {
            let dir = Instance::temp_dir(kind.name())?;
            let Launch {
                mut command,
                ready_path,
            } = launch(dir.path(), port)?;
            let mut instance = Instance::start(kind.name(), dir, &mut command)?;
            let url = format!("http://127.0.0.1:{port}{ready_path}");
            instance
                .wait_http_ok(&HttpClient::new(), &url, READY_TIMEOUT)
                .await?;
            Ok(RunningAgent::Other(instance))
        }
    })
    .await
}

/// The one scrape job every agent runs, in Prometheus' syntax (all three accept it).
fn scrape_configs(targets: &[String]) -> Value {
    json!([{
        "job_name": JOB,
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "static_configs": [{ "targets": targets }],
    }])
}

/// Writes `config` (JSON, which is YAML) to `dir/name` and returns the path.
fn write_config(dir: &Path, name: &str, config: &Value) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, config.to_string())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// Checks a list of agent names (`crowsnest,vmagent`) and keeps its order.
///
/// # Errors
/// On an unknown or repeated name, or an empty list.
pub fn parse_list(text: &str) -> Result<Vec<AgentKind>> {
    let mut agents: Vec<AgentKind> = Vec::new();
    for name in text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let kind: AgentKind = name.parse()?;
        if agents.contains(&kind) {
            bail!("agent {name} is listed twice");
        }
        agents.push(kind);
    }
    if agents.is_empty() {
        bail!("no agents given");
    }
    Ok(agents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_lists_parse_in_order_and_reject_mistakes() {
        assert_eq!(
            parse_list("vmagent, crowsnest").expect("ok"),
            [AgentKind::Vmagent, AgentKind::Crowsnest]
        );
        assert!(parse_list("vmagent,telegraf").is_err());
        assert!(parse_list("vmagent,vmagent").is_err());
        assert!(parse_list(" , ").is_err());
    }

    #[test]
    fn every_agent_scrapes_the_same_job() {
        let targets = ["127.0.0.1:1".to_owned(), "127.0.0.1:2".to_owned()];
        let job = &scrape_configs(&targets)[0];
        assert_eq!(job["job_name"], JOB);
        assert_eq!(job["scrape_interval"], "1s");
        assert_eq!(job["static_configs"][0]["targets"][1], "127.0.0.1:2");
    }
}
