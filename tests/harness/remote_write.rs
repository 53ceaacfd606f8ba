//! A hand-written remote-write 1.0 encoder, for tests only: it lets harness tests feed
//! Prometheus and VictoriaMetrics without the agent, and gives agent tests a reference.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use prost::Message;

use crate::http::HttpClient;

/// `prometheus.WriteRequest` (fields 1 and 3 of remote-write 1.0; metadata omitted).
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    /// The series with their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: labels sorted by name, samples in time order.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    /// Labels, `__name__` included, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

impl TimeSeries {
    /// A series named `name` with `labels` (sorted here, as the spec requires) and no samples.
    pub fn new(name: &str, labels: &[(&str, &str)]) -> Self {
        let mut all: Vec<Label> = labels
            .iter()
            .map(|(n, v)| Label {
                name: (*n).to_owned(),
                value: (*v).to_owned(),
            })
            .collect();
        all.push(Label {
            name: "__name__".to_owned(),
            value: name.to_owned(),
        });
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            labels: all,
            samples: Vec::new(),
        }
    }

    /// Appends a sample.
    #[must_use]
    pub fn sample(mut self, value: f64, timestamp_ms: i64) -> Self {
        self.samples.push(Sample {
            value,
            timestamp: timestamp_ms,
        });
        self
    }
}

impl WriteRequest {
    /// Protobuf, then snappy block format: the request body remote write sends.
    pub fn encode_body(&self) -> Bytes {
        let proto = self.encode_to_vec();
        // Snappy block compression of an in-memory buffer only fails above ~4 GiB.
        let compressed = snap::raw::Encoder::new()
            .compress_vec(&proto)
            .unwrap_or_default();
        Bytes::from(compressed)
    }

    /// Decodes a body made by [`WriteRequest::encode_body`] (or any remote-write 1.0 sender).
    ///
    /// # Errors
    /// When the body is not snappy-compressed protobuf of this shape.
    pub fn decode_body(body: &[u8]) -> Result<Self> {
        let proto = snap::raw::Decoder::new()
            .decompress_vec(body)
            .context("snappy decode")?;
        Self::decode(proto.as_slice()).context("protobuf decode")
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// POSTs `request` to `url` with the remote-write 1.0 headers.
///
/// # Errors
/// On HTTP failure or a non-2xx answer (its body is in the message).
pub async fn push(client: &HttpClient, url: &str, request: &WriteRequest) -> Result<()> {
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    let response = client.post(url, &headers, request.encode_body()).await?;
    if !(200..300).contains(&response.status) {
        bail!(
            "remote write to {url}: status {}: {}",
            response.status,
            response.text()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_bodies_round_trip() {
        let series = TimeSeries::new("m", &[("z", "1"), ("a", "2")]).sample(1.5, 42);
        let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "a", "z"]);
        let request = WriteRequest {
            timeseries: vec![series],
        };
        let decoded = WriteRequest::decode_body(&request.encode_body()).expect("round trip");
        assert_eq!(decoded, request);
        assert!(WriteRequest::decode_body(b"not snappy").is_err());
    }
}
