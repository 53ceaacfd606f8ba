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

use crate::remote_write::proto::WriteRequest;

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
    pub status: u16,
    pub at: tokio::time::Instant,
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
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            received: Mutex::default(),
            decode_errors: AtomicUsize::new(0),
            count: AtomicUsize::new(0),
            policy: Box::new(policy),
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
    let decoded = snap::raw::Decoder::new()
        .decompress_vec(&body)
        .ok()
        .and_then(|raw| WriteRequest::decode(raw.as_slice()).ok());
    let Some(request) = decoded else {
        st.decode_errors.fetch_add(1, Ordering::SeqCst);
        return Ok(http::Response::builder()
            .status(400)
            .body(Full::new(Bytes::from("bad body")))
            .expect("response"));
    };
    let n = st.count.fetch_add(1, Ordering::SeqCst);
    let reply = (st.policy)(n);
    st.received.lock().expect("lock").push(Received {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        request,
        status: reply.status,
        at: tokio::time::Instant::now(),
    });
    tokio::time::sleep(reply.delay).await;
    if reply.reset {
        // An error from the service makes hyper drop the connection.
        return Err(std::io::Error::other("reset"));
    }
    let mut resp = http::Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(*k, v);
    }
    Ok(resp
        .body(Full::new(Bytes::from_static(reply.body.as_bytes())))
        .expect("response"))
}
