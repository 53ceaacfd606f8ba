//! The crowsnest binary under test: `crowsnest run --config FILE`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_yaml::{Mapping, Value};

use crate::http::{HttpClient, Response};
use crate::instance::{Instance, READY_TIMEOUT};
use crate::ports::with_free_port;
use crate::process::STOP_GRACE;

/// A running agent with its config file and log in a temp directory; stopped on drop
/// (SIGTERM, then SIGKILL after [`STOP_GRACE`]).
#[derive(Debug)]
pub struct Agent {
    listen: SocketAddr,
    client: HttpClient,
    config_path: PathBuf,
    instance: Instance,
}

impl Agent {
    /// Writes `config_yaml` to a file and runs the agent with it, waiting for `/readyz`.
    ///
    /// Unless the YAML sets them, `server.listen_address` becomes a free 127.0.0.1 port and
    /// `storage.path` a directory inside the agent's temp directory.
    ///
    /// # Errors
    /// When the YAML is not a mapping, the binary cannot be built or started, or the agent
    /// is not ready within [`READY_TIMEOUT`] (the message includes its last output).
    pub async fn start(config_yaml: &str) -> Result<Self> {
        Self::start_binary(&agent_binary()?, config_yaml).await
    }

    /// Like [`Agent::start`] with a given binary (e.g. a release build).
    ///
    /// # Errors
    /// As [`Agent::start`].
    pub async fn start_binary(binary: &Path, config_yaml: &str) -> Result<Self> {
        with_free_port(|port| Self::start_on(binary, config_yaml, port)).await
    }

    async fn start_on(binary: &Path, config_yaml: &str, port: u16) -> Result<Self> {
        let dir = Instance::temp_dir("agent")?;
        let storage = dir.path().join("storage");
        let (config, listen) = complete_config(config_yaml, &storage, port)?;
        let config_path = dir.path().join("crowsnest.yaml");
        std::fs::write(&config_path, config).context("write agent config")?;
        let mut command = Command::new(binary);
        command.arg("run").arg("--config").arg(&config_path);
        let mut instance = Instance::start("crowsnest", dir, &mut command)?;
        let client = HttpClient::new();
        instance
            .wait_http_ok(&client, &format!("http://{listen}/readyz"), READY_TIMEOUT)
            .await?;
        Ok(Self {
            listen,
            client,
            config_path,
            instance,
        })
    }

    /// The agent's HTTP address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// `GET <base>path` on the agent's server (e.g. `/api/v1/status`).
    ///
    /// # Errors
    /// On connection failure or timeout.
    pub async fn get(&self, path: &str) -> Result<Response> {
        self.client.get(&format!("{}{path}", self.base_url())).await
    }

    /// The agent's own `/metrics` text.
    ///
    /// # Errors
    /// On HTTP failure or a non-200 answer.
    pub async fn self_metrics(&self) -> Result<String> {
        let response = self.get("/metrics").await?;
        if response.status != 200 {
            bail!("/metrics answered {}: {}", response.status, response.text());
        }
        Ok(response.text())
    }

    /// The config file the agent runs with (rewrite it and signal the process to test reloads).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The process and its directory.
    pub fn instance(&mut self) -> &mut Instance {
        &mut self.instance
    }

    /// The agent's output so far, last `lines` lines.
    pub fn log_tail(&mut self, lines: usize) -> String {
        self.instance.process().log_tail(lines)
    }

    /// Asks the agent to shut down (SIGTERM) and returns how it exited, killing it after
    /// [`STOP_GRACE`] (a graceful shutdown should never need that).
    ///
    /// # Errors
    /// When it cannot be signalled or reaped.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.instance.process().stop(STOP_GRACE)
    }
}

/// Fills in `server.listen_address` (127.0.0.1:`port`) and `storage.path` when absent;
/// returns the YAML to write and the address the agent will listen on.
fn complete_config(config_yaml: &str, storage: &Path, port: u16) -> Result<(String, SocketAddr)> {
    let mut root = match serde_yaml::from_str::<Value>(config_yaml).context("agent config YAML")? {
        Value::Null => Mapping::new(),
        Value::Mapping(map) => map,
        other => bail!("agent config must be a mapping, got {other:?}"),
    };
    let listen = {
        let server = section(&mut root, "server")?;
        match server.get("listen_address").and_then(Value::as_str) {
            Some(text) => text
                .parse()
                .with_context(|| format!("server.listen_address {text}"))?,
            None => {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                server.insert("listen_address".into(), addr.to_string().into());
                addr
            }
        }
    };
    let storage_section = section(&mut root, "storage")?;
    if !storage_section.contains_key("path") {
        storage_section.insert("path".into(), storage.display().to_string().into());
    }
    let yaml = serde_yaml::to_string(&Value::Mapping(root)).context("serialize agent config")?;
    Ok((yaml, listen))
}

/// The mapping under `key`, created when missing.
fn section<'a>(root: &'a mut Mapping, key: &str) -> Result<&'a mut Mapping> {
    let value = root
        .entry(key.into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if value.is_null() {
        *value = Value::Mapping(Mapping::new());
    }
    value
        .as_mapping_mut()
        .with_context(|| format!("`{key}` in the agent config must be a mapping"))
}

/// Path of the `crowsnest` binary, built once per test process.
///
/// `CROWSNEST_BIN` wins (xtask builds the binary before the tests and sets it). Otherwise
/// `cargo build -p crowsnest` runs once — cargo itself decides whether it is stale — into
/// the target directory this test binary was built in.
///
/// # Errors
/// When the build fails or the binary is not where it should be.
pub fn agent_binary() -> Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| locate_or_build().map_err(|err| format!("{err:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn locate_or_build() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("CROWSNEST_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("CROWSNEST_BIN={} does not exist", path.display());
        }
        return Ok(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (profile_dir, profile) = profile_dir(&workspace);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&workspace)
        .args(["build", "-p", "crowsnest", "--bin", "crowsnest"]);
    build.arg("--profile").arg(&profile);
    if let Some(target) = profile_dir.parent() {
        build.env("CARGO_TARGET_DIR", target);
    }
    eprintln!("building the agent: {build:?}");
    let status = build.status().context("run cargo build")?;
    if !status.success() {
        bail!("cargo build -p crowsnest failed ({status})");
    }
    let binary = profile_dir.join("crowsnest");
    if !binary.is_file() {
        bail!("built the agent but {} is missing", binary.display());
    }
    Ok(binary)
}

/// The profile output directory (`<target>/debug`) and cargo profile name this test was
/// built with, read from the test executable's path `<target>/<dir>/deps/<test>`.
fn profile_dir(workspace: &Path) -> (PathBuf, String) {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        (deps.file_name()? == "deps").then(|| deps.parent().map(Path::to_path_buf))?
    });
    let dir = from_exe.unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace.join("target"), PathBuf::from);
        target.join("debug")
    });
    let profile = match dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    (dir, profile)
}

/// How long tests should wait for an agent to exit after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = STOP_GRACE;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_agent_that_exits_fails_start_with_its_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("fake-agent");
        std::fs::write(&script, "#!/bin/sh\necho \"fake agent got: $*\"\nexit 3\n").expect("write");
        let status = Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .expect("chmod");
        assert!(status.success());

        let err = Agent::start_binary(&script, "global: {}\n")
            .await
            .expect_err("exits early");
        let text = format!("{err:#}");
        assert!(text.contains("exited early"), "{text}");
        assert!(text.contains("fake agent got: run --config"), "{text}");
        assert!(text.contains("crowsnest.yaml"), "{text}");
    }

    #[test]
    fn missing_server_and_storage_are_filled_in() {
        let (yaml, listen) =
            complete_config("global: {scrape_interval: 1s}\n", Path::new("/tmp/s"), 9).expect("ok");
        let value: Value = serde_yaml::from_str(&yaml).expect("yaml");
        assert_eq!(
            value["server"]["listen_address"].as_str(),
            Some(listen.to_string().as_str())
        );
        assert_eq!(value["storage"]["path"].as_str(), Some("/tmp/s"));
        assert_eq!(value["global"]["scrape_interval"].as_str(), Some("1s"));
        assert_eq!(listen, SocketAddr::from(([127, 0, 0, 1], 9)));
    }

    #[test]
    fn given_values_are_kept_and_bad_shapes_rejected() {
        let input = "server:\n  listen_address: 127.0.0.1:7\nstorage: {path: /x}\n";
        let (yaml, listen) = complete_config(input, Path::new("/tmp/s"), 9).expect("ok");
        assert_eq!(listen.port(), 7);
        assert!(yaml.contains("path: /x"), "{yaml}");
        assert!(complete_config("", Path::new("/s"), 9).is_ok());
        assert!(complete_config("- a list\n", Path::new("/s"), 9).is_err());
        assert!(complete_config("server: 3\n", Path::new("/s"), 9).is_err());
    }
}
