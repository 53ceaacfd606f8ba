//! A real VictoriaMetrics single-node server: remote-write receiver and query API.

use std::ops::{Deref, DerefMut};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::backend::Backend;
use crate::deps::VICTORIA_METRICS_BIN;
use crate::instance::Instance;
use crate::ports::with_free_port;
use crate::prom_api::{LabelSet, PromApi};

/// Prometheus' staleness marker, a NaN with this exact bit pattern. VictoriaMetrics exports
/// stored markers as `null`; [`VictoriaMetrics::export`] turns them back into this value.
pub const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// One series from `/api/v1/export`: raw samples, exactly as stored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExportedSeries {
    /// Labels, `__name__` included.
    pub metric: LabelSet,
    /// Sample values, in timestamp order.
    pub values: Vec<f64>,
    /// Sample timestamps in milliseconds, matching `values`.
    pub timestamps: Vec<i64>,
}

/// A running VictoriaMetrics on 127.0.0.1 with its own storage directory; stopped on drop.
/// Derefs to [`Backend`] (remote-write URL, process) and through it to [`PromApi`].
#[derive(Debug)]
pub struct VictoriaMetrics {
    backend: Backend,
}

impl VictoriaMetrics {
    /// Starts VictoriaMetrics and waits for `/health`.
    ///
    /// Fresh samples are queryable at once: `-search.latencyOffset=0s`, no response cache,
    /// and every read through [`PromApi`] or [`VictoriaMetrics::export`] first calls
    /// `/internal/force_flush` (without it, 1.79 shows new series only after ~10s). Writes
    /// from another process may still be in flight, so poll with [`PromApi::wait_for`].
    ///
    /// # Errors
    /// When it cannot start or is not ready within [`READY_TIMEOUT`].
    pub async fn start() -> Result<Self> {
        Self::start_with_args(&[]).await
    }

    /// Like [`VictoriaMetrics::start`] with extra command-line flags (e.g. higher query
    /// limits for a benchmark's hundreds of thousands of series).
    ///
    /// # Errors
    /// As [`VictoriaMetrics::start`].
    pub async fn start_with_args(extra: &[String]) -> Result<Self> {
        with_free_port(|port| Self::start_on(port, extra)).await
    }

    async fn start_on(port: u16, extra: &[String]) -> Result<Self> {
        let dir = Instance::temp_dir("victoria-metrics")?;
        let data = dir.path().join("data");
        let mut command = Command::new(VICTORIA_METRICS_BIN);
        command
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", data.display()))
            .arg("-retentionPeriod=1d")
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache");
        // Newer releases buffer recent rows for up to 5s unless told otherwise; Debian
        // bookworm's 1.79 has no such flag (and rejects unknown flags).
        if supports_flag("inmemoryDataFlushInterval") {
            command.arg("-inmemoryDataFlushInterval=1s");
        }
        command.args(extra);
        let api = PromApi::new(&format!("http://127.0.0.1:{port}"))
            .flush_before_reads("/internal/force_flush");
        let backend = Backend::start("victoria-metrics", dir, &mut command, api, "/health").await?;
        Ok(Self { backend })
    }

    /// Raw samples of every series matching `matcher`, from `/api/v1/export`: exact values
    /// and millisecond timestamps, without query-time lookback or deduplication.
    ///
    /// # Errors
    /// On HTTP failure, a non-200 status or an undecodable line.
    pub async fn export(&self, matcher: &str) -> Result<Vec<ExportedSeries>> {
        self.api().flush().await?;
        let url = self
            .api()
            .url("/api/v1/export", &[("match[]", matcher.to_owned())]);
        let response = self.api().http().get(&url).await?;
        if response.status != 200 {
            bail!("GET {url}: status {}: {}", response.status, response.text());
        }
        parse_export(&response.text()).with_context(|| format!("GET {url}"))
    }
}

impl Deref for VictoriaMetrics {
    type Target = Backend;

    fn deref(&self) -> &Backend {
        &self.backend
    }
}

impl DerefMut for VictoriaMetrics {
    fn deref_mut(&mut self) -> &mut Backend {
        &mut self.backend
    }
}

/// One JSON object per line.
fn parse_export(text: &str) -> Result<Vec<ExportedSeries>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| parse_export_line(line).with_context(|| format!("export line {line}")))
        .collect()
}

/// VictoriaMetrics writes special values bare (`"values":[NaN,+Inf]`, staleness markers as
/// `null`), which is not JSON:
/// the values array is cut out and parsed as floats, the rest decoded as JSON. The array is
/// found from the end because `metric` (label values: any text) comes before it.
fn parse_export_line(line: &str) -> Result<ExportedSeries> {
    const KEY: &str = "\"values\":[";
    let start = line.rfind(KEY).context("no values array")?;
    let rest = &line[start + KEY.len()..];
    let end = rest.find(']').context("unterminated values array")?;
    let values = rest[..end]
        .split(',')
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(|token| match token {
            "null" => Ok(STALE_NAN),
            _ => token
                .parse::<f64>()
                .with_context(|| format!("value {token:?}")),
        })
        .collect::<Result<Vec<f64>>>()?;
    let without_values = format!("{}{KEY}{}", &line[..start], &rest[end..]);
    let mut series: ExportedSeries =
        serde_json::from_str(&without_values).context("decode export JSON")?;
    series.values = values;
    Ok(series)
}

/// Whether this VictoriaMetrics build knows `-<flag>`, asked once per test process.
fn supports_flag(flag: &str) -> bool {
    static HELP: OnceLock<String> = OnceLock::new();
    HELP.get_or_init(|| {
        Command::new(VICTORIA_METRICS_BIN)
            .arg("-help")
            .output()
            .map(|out| {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                text
            })
            .unwrap_or_default()
    })
    .contains(&format!("-{flag} "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_lines_decode_to_series() {
        let text = concat!(
            r#"{"metric":{"__name__":"up","job":"a"},"values":[1,0],"timestamps":[1000,2000]}"#,
            "\n\n",
            r#"{"metric":{"__name__":"x"},"values":[2.5],"timestamps":[3000]}"#,
            "\n"
        );
        let series = parse_export(text).expect("decodes");
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].metric["job"], "a");
        assert_eq!(series[0].values, vec![1.0, 0.0]);
        assert_eq!(series[1].timestamps, vec![3000]);
        assert!(parse_export("{not json").is_err());
    }

    #[test]
    fn bare_special_values_and_tricky_label_values_decode() {
        let line = concat!(
            r#"{"metric":{"__name__":"x","l":"\"values\":[9]"},"#,
            r#""values":[NaN,+Inf,-Inf,1e3,null],"timestamps":[1,2,3,4,5]}"#
        );
        let series = parse_export_line(line).expect("decodes");
        assert_eq!(series.metric["l"], r#""values":[9]"#);
        assert!(series.values[0].is_nan());
        assert_eq!(
            &series.values[1..4],
            &[f64::INFINITY, f64::NEG_INFINITY, 1000.0]
        );
        assert_eq!(series.values[4].to_bits(), STALE_NAN.to_bits());
        assert_eq!(series.timestamps, vec![1, 2, 3, 4, 5]);
    }
}
