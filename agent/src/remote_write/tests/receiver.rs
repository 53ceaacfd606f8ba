//! An in-process remote write receiver on 127.0.0.1: decodes snappy + prost,
//! records every request and answers from a scripted policy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::remote_write::proto::{Exemplar, Label, Sample, TimeSeries, WriteRequest};
use crate::remote_write::proto_v2;

/// How the receiver treats remote write 2.0 requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V2 {
    /// Decodes 2.0 (checking the symbol table, refs and metadata) and sends
    /// the `-Written` headers.
    Speaks,
    /// Answers 415 to anything but the 1.0 message.
    Refuses,
    /// A 1.0 receiver that ignores Content-Type: decodes every body as 1.0.
    Blind,
}

/// How to answer one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'static str,
    pub delay: Duration,
    /// Drop the connection without answering (after `delay`).
    pub reset: bool,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            body: "",
            delay: Duration::ZERO,
            reset: false,
        }
    }

    /// Closes the connection without a response.
    pub fn reset() -> Self {
        Self {
            reset: true,
            ..Self::status(0)
        }
    }
}

/// One received request.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: http::Method,
    pub path: String,
    pub headers: http::HeaderMap,
    pub request: WriteRequest,
    /// The message the request carried was 2.0 (decoded as such).
    pub v2: bool,
    pub status: u16,
    pub at: tokio::time::Instant,
    /// What only 2.0 carries, per `TimeSeries` (empty for 1.0 requests).
    pub v2_meta: Vec<V2Meta>,
}

/// Metadata and start timestamps of one 2.0 `TimeSeries`, symbols resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct V2Meta {
    /// The labels as `name=value,…` (the same text as [`Received::keys`]).
    pub labels: String,
    pub help: String,
    pub unit: String,
    /// `start_timestamp` of each sample.
    pub start_timestamps: Vec<i64>,
}

impl Received {
    /// `(labels as text, timestamp)` of every sample.
    pub fn keys(&self) -> Vec<(String, i64)> {
        self.request
            .timeseries
            .iter()
            .flat_map(|ts| {
                let labels: Vec<String> = ts
                    .labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect();
                let labels = labels.join(",");
                ts.samples
                    .iter()
                    .map(move |s| (labels.clone(), s.timestamp))
            })
            .collect()
    }
}

type Policy = dyn Fn(usize) -> Reply + Send + Sync;

struct State {
    received: Mutex<Vec<Received>>,
    decode_errors: AtomicUsize,
    count: AtomicUsize,
    policy: Box<Policy>,
    v2: V2,
    /// 2.0 requests that broke a structural rule, with why.
    v2_errors: Mutex<Vec<String>>,
}

/// The receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Answers request `n` (0-based) with `policy(n)`.
    pub async fn start(policy: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_at("127.0.0.1:0", policy).await
    }

    /// Like [`Self::start`], listening on `addr`.
    pub async fn start_at(
        addr: &str,
        policy: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_v2(addr, V2::Speaks, policy).await
    }

    /// Like [`Self::start_at`], treating 2.0 requests as `v2` says.
    pub async fn start_v2(
        addr: &str,
        v2: V2,
        policy: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            received: Mutex::default(),
            decode_errors: AtomicUsize::new(0),
            count: AtomicUsize::new(0),
            policy: Box::new(policy),
            v2,
            v2_errors: Mutex::default(),
        });
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(Arc::clone(&st), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    pub fn url(&self) -> url::Url {
        format!("http://{}/api/v1/write", self.addr)
            .parse()
            .expect("url")
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    /// Structural errors found in 2.0 requests.
    pub fn v2_errors(&self) -> Vec<String> {
        self.state.v2_errors.lock().expect("lock").clone()
    }

    pub fn decode_errors(&self) -> usize {
        self.state.decode_errors.load(Ordering::SeqCst)
    }

    /// Samples in 2xx-answered requests, by key, with how often each arrived.
    pub fn delivered(&self) -> HashMap<(String, i64), usize> {
        let mut out = HashMap::new();
        for r in self
            .received()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
        {
            for k in r.keys() {
                *out.entry(k).or_default() += 1;
            }
        }
        out
    }

    /// Samples in any request (whatever the answer), with counts.
    pub fn seen(&self) -> HashMap<(String, i64), usize> {
        let mut out = HashMap::new();
        for r in self.received() {
            for k in r.keys() {
                *out.entry(k).or_default() += 1;
            }
        }
        out
    }
}

async fn handle(
    st: Arc<State>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let is_v2 = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("proto=io.prometheus.write.v2.Request"));
    if is_v2 && st.v2 == V2::Refuses {
        return Ok(http::Response::builder()
            .status(415)
            .body(Full::new(Bytes::from("unsupported proto")))
            .expect("response"));
    }
    let raw = snap::raw::Decoder::new().decompress_vec(&body).ok();
    let decoded = raw.and_then(|raw| {
        if is_v2 && st.v2 == V2::Speaks {
            let req = proto_v2::Request::decode(raw.as_slice()).ok()?;
            match check_v2(&req) {
                Ok(v1) => Some(v1),
                Err(e) => {
                    st.v2_errors.lock().expect("lock").push(e);
                    None
                }
            }
        } else {
            WriteRequest::decode(raw.as_slice())
                .ok()
                .map(|r| (r, Vec::new()))
        }
    });
    let Some((request, v2_meta)) = decoded else {
        st.decode_errors.fetch_add(1, Ordering::SeqCst);
        return Ok(http::Response::builder()
            .status(400)
            .body(Full::new(Bytes::from("bad body")))
            .expect("response"));
    };
    let n = st.count.fetch_add(1, Ordering::SeqCst);
    let reply = (st.policy)(n);
    let written: usize = request.timeseries.iter().map(|t| t.samples.len()).sum();
    st.received.lock().expect("lock").push(Received {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        request,
        v2: is_v2 && st.v2 == V2::Speaks,
        status: reply.status,
        at: tokio::time::Instant::now(),
        v2_meta,
    });
    tokio::time::sleep(reply.delay).await;
    if reply.reset {
        // An error from the service makes hyper drop the connection.
        return Err(std::io::Error::other("reset"));
    }
    let mut resp = http::Response::builder().status(reply.status);
    if is_v2 && st.v2 == V2::Speaks && (200..300).contains(&reply.status) {
        resp = resp.header(
            "x-prometheus-remote-write-samples-written",
            written.to_string(),
        );
    }
    for (k, v) in &reply.headers {
        resp = resp.header(*k, v);
    }
    Ok(resp
        .body(Full::new(Bytes::from_static(reply.body.as_bytes())))
        .expect("response"))
}

/// Resolves a list of (name, value) refs, checking the 2.0 rules: even
/// length, refs in range, no empty names or values, names sorted and unique.
fn resolve_labels(symbols: &[String], refs: &[u32]) -> Result<Vec<Label>, String> {
    if !refs.len().is_multiple_of(2) {
        return Err(format!("labels_refs has odd length {}", refs.len()));
    }
    let sym = |r: u32| {
        symbols
            .get(r as usize)
            .cloned()
            .ok_or_else(|| format!("ref {r} out of range"))
    };
    let mut labels = Vec::new();
    for p in refs.chunks(2) {
        let (name, value) = (sym(p[0])?, sym(p[1])?);
        if name.is_empty() || value.is_empty() {
            return Err("empty label name or value".into());
        }
        labels.push(Label { name, value });
    }
    if labels
        .windows(2)
        .any(|w| w[0].name.as_bytes() >= w[1].name.as_bytes())
    {
        return Err("label refs not sorted by name".into());
    }
    Ok(labels)
}

/// Checks the 2.0 structure (symbols start with "" and are unique, refs in
/// range and in pairs, label names sorted and unique, metadata present,
/// exemplars with valid refs) and converts it to the 1.0 shape the tests
/// compare, plus what only 2.0 carries.
fn check_v2(req: &proto_v2::Request) -> Result<(WriteRequest, Vec<V2Meta>), String> {
    if req.symbols.first().map(String::as_str) != Some("") {
        return Err("symbols[0] is not the empty string".into());
    }
    let mut unique: Vec<&String> = req.symbols.iter().collect();
    unique.sort();
    unique.dedup();
    if unique.len() != req.symbols.len() {
        return Err("symbols are not deduplicated".into());
    }
    let sym = |r: u32| {
        req.symbols
            .get(r as usize)
            .cloned()
            .ok_or_else(|| format!("ref {r} out of range"))
    };
    let mut out = WriteRequest::default();
    let mut metas = Vec::new();
    for ts in &req.timeseries {
        if ts.labels_refs.is_empty() {
            return Err("labels_refs is empty".into());
        }
        let labels = resolve_labels(&req.symbols, &ts.labels_refs)?;
        let Some(meta) = &ts.metadata else {
            return Err("no metadata".into());
        };
        if proto_v2::MetricType::try_from(meta.r#type).is_err() {
            return Err(format!("unknown metric type {}", meta.r#type));
        }
        let mut exemplars = Vec::new();
        for e in &ts.exemplars {
            exemplars.push(Exemplar {
                labels: resolve_labels(&req.symbols, &e.labels_refs)?,
                value: e.value,
                timestamp: e.timestamp,
            });
        }
        metas.push(V2Meta {
            labels: labels
                .iter()
                .map(|l| format!("{}={}", l.name, l.value))
                .collect::<Vec<_>>()
                .join(","),
            help: sym(meta.help_ref)?,
            unit: sym(meta.unit_ref)?,
            start_timestamps: ts.samples.iter().map(|s| s.start_timestamp).collect(),
        });
        if ts
            .samples
            .windows(2)
            .any(|w| w[0].timestamp > w[1].timestamp)
        {
            return Err("samples out of order within a series".into());
        }
        out.timeseries.push(TimeSeries {
            labels,
            samples: ts
                .samples
                .iter()
                .map(|s| Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                })
                .collect(),
            exemplars,
            histograms: Vec::new(),
        });
    }
    Ok((out, metas))
}
