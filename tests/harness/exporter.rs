//! An in-process scrape target whose response the test controls.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::wait;

/// Content type of the Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics 1.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the exporter answers; changed by the test between scrapes.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    content_type: String,
    body: String,
    delay: Duration,
}

/// One request as the exporter saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Path and query, e.g. `/metrics?x=1`.
    pub path_and_query: String,
    /// Request headers (e.g. `Accept`, `Authorization`).
    pub headers: HeaderMap,
}

#[derive(Debug)]
struct Shared {
    reply: Mutex<Reply>,
    last: Mutex<Option<RecordedRequest>>,
    requests: AtomicU64,
}

/// An HTTP server on 127.0.0.1 answering every path with the configured reply and
/// counting requests. Runs on the test's tokio runtime; stops accepting on drop.
#[derive(Debug)]
pub struct Exporter {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Exporter {
    /// Starts serving an empty text-format body with status 200.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind exporter")?;
        let addr = listener.local_addr().context("exporter address")?;
        let shared = Arc::new(Shared {
            reply: Mutex::new(Reply {
                status: 200,
                content_type: TEXT_CONTENT_TYPE.to_owned(),
                body: String::new(),
                delay: Duration::ZERO,
            }),
            last: Mutex::new(None),
            requests: AtomicU64::new(0),
        });
        let task = {
            let shared = Arc::clone(&shared);
            tokio::spawn(serve_http1(listener, move |request| {
                answer(request, Arc::clone(&shared))
            }))
        };
        Ok(Self { addr, shared, task })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, as a scrape config target.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Sets the body of later responses.
    pub fn set_body(&self, body: impl Into<String>) {
        self.with_reply(|reply| reply.body = body.into());
    }

    /// Sets the status code of later responses.
    pub fn set_status(&self, status: u16) {
        self.with_reply(|reply| reply.status = status);
    }

    /// Sets the `Content-Type` of later responses.
    pub fn set_content_type(&self, content_type: &str) {
        self.with_reply(|reply| reply.content_type = content_type.to_owned());
    }

    /// Delays later responses (to provoke scrape timeouts).
    pub fn set_delay(&self, delay: Duration) {
        self.with_reply(|reply| reply.delay = delay);
    }

    /// Serves `body` as Prometheus text format.
    pub fn serve_text(&self, body: impl Into<String>) {
        self.set_content_type(TEXT_CONTENT_TYPE);
        self.set_body(body);
    }

    /// Serves `body` as OpenMetrics.
    pub fn serve_openmetrics(&self, body: impl Into<String>) {
        self.set_content_type(OPENMETRICS_CONTENT_TYPE);
        self.set_body(body);
    }

    /// How many requests have been answered or are being answered.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until at least `count` requests arrived.
    ///
    /// # Errors
    /// After `timeout`.
    pub async fn wait_for_requests(&self, count: u64, timeout: Duration) -> Result<()> {
        let what = format!("{count} requests to the exporter at {}", self.addr);
        wait::poll(&what, timeout, Duration::from_millis(20), || async {
            let seen = self.requests();
            if seen >= count {
                Ok(Some(()))
            } else {
                anyhow::bail!("{seen} so far")
            }
        })
        .await
    }

    fn with_reply(&self, change: impl FnOnce(&mut Reply)) {
        change(
            &mut self
                .shared
                .reply
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves HTTP/1.1 (keep-alive) on `listener` until the task is aborted, answering every
/// request with `answer`; shared by the test exporter, the benchmark's synthetic one and
/// the fault-injecting remote-write receiver.
pub(crate) async fn serve_http1<F, Fut, E>(listener: TcpListener, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            // A scraper hanging up mid-response is not the exporter's failure.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, http::Error> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let recorded = RecordedRequest {
        path_and_query: request
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned(),
        headers: request.headers().clone(),
    };
    *shared.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(recorded);
    let reply = shared
        .reply
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, reply.content_type)
        .body(Full::new(Bytes::from(reply.body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HttpClient;

    #[tokio::test]
    async fn serves_what_the_test_sets_and_counts_requests() {
        let exporter = Exporter::start().await.expect("exporter starts");
        let client = HttpClient::new();
        exporter.serve_openmetrics("a 1\n# EOF\n");
        let first = client.get(&exporter.url()).await.expect("first scrape");
        assert_eq!(first.status, 200);
        assert_eq!(first.text(), "a 1\n# EOF\n");
        assert_eq!(
            first.headers[header::CONTENT_TYPE],
            OPENMETRICS_CONTENT_TYPE
        );

        exporter.set_status(503);
        exporter.set_body("down");
        let second = client
            .get(&format!("{}?x=1", exporter.url()))
            .await
            .expect("second");
        assert_eq!((second.status, second.text().as_str()), (503, "down"));
        assert_eq!(exporter.requests(), 2);
        let last = exporter.last_request().expect("recorded");
        assert_eq!(last.path_and_query, "/metrics?x=1");
        exporter
            .wait_for_requests(2, Duration::from_secs(1))
            .await
            .expect("already two");
    }
}
