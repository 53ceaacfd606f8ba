//! Client for the Prometheus HTTP query API, which Prometheus and VictoriaMetrics share.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::http::HttpClient;
use crate::wait;

/// A series' labels, `__name__` included, sorted by name.
pub type LabelSet = BTreeMap<String, String>;

/// An instant vector: each series with its one value.
pub type InstantVector = Vec<(LabelSet, f64)>;

/// A range vector: each series with its `(unix seconds, value)` points.
pub type RangeVector = Vec<(LabelSet, Vec<(f64, f64)>)>;

/// How often [`PromApi::wait_for`] re-runs its query.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Query client rooted at a server's base URL (`http://127.0.0.1:PORT`).
#[derive(Debug, Clone)]
pub struct PromApi {
    base: String,
    client: HttpClient,
    flush_path: Option<&'static str>,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Value,
    #[serde(default, rename = "errorType")]
    error_type: String,
    #[serde(default)]
    error: String,
}

#[derive(Debug, Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Value,
}

#[derive(Debug, Deserialize)]
struct InstantSeries {
    metric: LabelSet,
    value: (f64, String),
}

#[derive(Debug, Deserialize)]
struct RangeSeries {
    metric: LabelSet,
    values: Vec<(f64, String)>,
}

impl PromApi {
    /// A client for the server at `base_url` (no trailing slash needed).
    pub fn new(base_url: &str) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_owned(),
            client: HttpClient::new(),
            flush_path: None,
        }
    }

    /// Makes every read first `GET path` on the server, for servers that buffer fresh
    /// samples before they become searchable (VictoriaMetrics' `/internal/force_flush`).
    #[must_use]
    pub fn flush_before_reads(mut self, path: &'static str) -> Self {
        self.flush_path = Some(path);
        self
    }

    /// Asks the server to make buffered samples searchable, when it needs that.
    ///
    /// # Errors
    /// On HTTP failure or a non-2xx answer.
    pub async fn flush(&self) -> Result<()> {
        let Some(path) = self.flush_path else {
            return Ok(());
        };
        let response = self.client.get(&format!("{}{path}", self.base)).await?;
        if !(200..300).contains(&response.status) {
            bail!(
                "GET {path}: status {}: {}",
                response.status,
                response.text()
            );
        }
        Ok(())
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The HTTP client this API uses, for endpoints without a helper.
    pub fn http(&self) -> &HttpClient {
        &self.client
    }

    /// Instant query evaluated now. A scalar result comes back as one entry with no labels.
    ///
    /// # Errors
    /// On HTTP failure, a non-success API status, or a range/string result.
    pub async fn query(&self, promql: &str) -> Result<InstantVector> {
        self.instant(promql, None).await
    }

    /// Instant query evaluated at `time`.
    ///
    /// # Errors
    /// As [`PromApi::query`].
    pub async fn query_at(&self, promql: &str, time: SystemTime) -> Result<InstantVector> {
        self.instant(promql, Some(time)).await
    }

    /// Range query from `start` to `end` every `step`.
    ///
    /// # Errors
    /// On HTTP failure, a non-success API status, or a non-matrix result.
    pub async fn query_range(
        &self,
        promql: &str,
        start: SystemTime,
        end: SystemTime,
        step: Duration,
    ) -> Result<RangeVector> {
        let params = [
            ("query", promql.to_owned()),
            ("start", unix_seconds(start)),
            ("end", unix_seconds(end)),
            ("step", format!("{}", step.as_secs_f64())),
        ];
        let data: QueryData = self.get_data("/api/v1/query_range", &params).await?;
        if data.result_type != "matrix" {
            bail!(
                "query_range {promql}: expected a matrix, got {}",
                data.result_type
            );
        }
        let series: Vec<RangeSeries> =
            serde_json::from_value(data.result).context("decode matrix")?;
        series
            .into_iter()
            .map(|s| {
                let points = s
                    .values
                    .iter()
                    .map(|(t, v)| Ok((*t, parse_value(v)?)))
                    .collect::<Result<Vec<_>>>()?;
                Ok((s.metric, points))
            })
            .collect()
    }

    /// Label sets of the series matching `matcher` (e.g. `{job="x"}`).
    ///
    /// # Errors
    /// On HTTP failure or a non-success API status.
    pub async fn series(&self, matcher: &str) -> Result<Vec<LabelSet>> {
        self.get_data("/api/v1/series", &[("match[]", matcher.to_owned())])
            .await
    }

    /// Re-runs `promql` until `predicate` accepts the result, returning that result. Query
    /// errors count as "not yet" (the server may still be ingesting).
    ///
    /// # Errors
    /// After `timeout`, naming the last result or error.
    pub async fn wait_for(
        &self,
        promql: &str,
        predicate: impl Fn(&InstantVector) -> bool,
        timeout: Duration,
    ) -> Result<InstantVector> {
        let what = format!("`{promql}` on {}", self.base);
        wait::poll(&what, timeout, POLL_INTERVAL, || async {
            let result = self.query(promql).await?;
            if predicate(&result) {
                Ok(Some(result))
            } else {
                bail!("last result: {result:?}")
            }
        })
        .await
    }

    async fn instant(&self, promql: &str, time: Option<SystemTime>) -> Result<InstantVector> {
        let mut params = vec![("query", promql.to_owned())];
        if let Some(time) = time {
            params.push(("time", unix_seconds(time)));
        }
        let data: QueryData = self.get_data("/api/v1/query", &params).await?;
        match data.result_type.as_str() {
            "vector" => {
                let series: Vec<InstantSeries> =
                    serde_json::from_value(data.result).context("decode vector")?;
                series
                    .into_iter()
                    .map(|s| Ok((s.metric, parse_value(&s.value.1)?)))
                    .collect()
            }
            "scalar" => {
                let (_, value): (f64, String) =
                    serde_json::from_value(data.result).context("decode scalar")?;
                Ok(vec![(LabelSet::new(), parse_value(&value)?)])
            }
            other => bail!("query {promql}: unexpected result type {other}"),
        }
    }

    /// GETs `path?params` and decodes the `data` field of a successful response.
    async fn get_data<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T> {
        self.flush().await?;
        let url = self.url(path, params);
        let response = self.client.get(&url).await?;
        let envelope: Envelope = serde_json::from_slice(&response.body).with_context(|| {
            format!(
                "GET {url}: status {}, not API JSON: {}",
                response.status,
                response.text()
            )
        })?;
        if envelope.status != "success" {
            bail!(
                "GET {url}: {} {}: {}",
                response.status,
                envelope.error_type,
                envelope.error
            );
        }
        serde_json::from_value(envelope.data).with_context(|| format!("GET {url}: decode data"))
    }

    /// `base + path + ?params`, form-encoded.
    pub fn url(&self, path: &str, params: &[(&str, String)]) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        format!("{}{path}?{query}", self.base)
    }
}

/// Seconds since the epoch with millisecond precision, as the API expects.
pub fn unix_seconds(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", since.as_secs(), since.subsec_millis())
}

/// Sample values are JSON strings: numbers, `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> Result<f64> {
    text.parse()
        .with_context(|| format!("sample value {text:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_include_special_floats() {
        assert_eq!(parse_value("1.5").expect("number"), 1.5);
        assert_eq!(parse_value("+Inf").expect("inf"), f64::INFINITY);
        assert_eq!(parse_value("-Inf").expect("-inf"), f64::NEG_INFINITY);
        assert!(parse_value("NaN").expect("nan").is_nan());
        assert!(parse_value("x").is_err());
    }

    #[test]
    fn urls_encode_promql() {
        let api = PromApi::new("http://127.0.0.1:1/");
        let url = api.url("/api/v1/query", &[("query", "up{job=\"a b\"}".to_owned())]);
        assert_eq!(
            url,
            "http://127.0.0.1:1/api/v1/query?query=up%7Bjob%3D%22a+b%22%7D"
        );
    }

    #[test]
    fn times_have_millisecond_precision() {
        let time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_042);
        assert_eq!(unix_seconds(time), "1700000000.042");
    }
}
