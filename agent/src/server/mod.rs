//! The agent's HTTP server: `/metrics`, `/healthz`, `/readyz` and
//! `/api/v1/status` (JSON of targets and remote-write queues).

mod page;
mod status;

pub use status::{AgentStatus, StatusSource};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::telemetry;

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the listen address failed.
    #[error("cannot listen on {address} (server.listen_address): {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What the handlers read.
#[derive(Clone)]
pub struct State {
    /// Self-metrics.
    pub registry: Arc<Registry>,
    /// True once the pipeline runs; `/readyz` answers 503 before.
    pub ready: Arc<AtomicBool>,
    /// Source of `/api/v1/status`.
    pub status: Arc<dyn StatusSource>,
}

/// A bound server; [`Server::serve`] runs it.
pub struct Server {
    listener: TcpListener,
    state: State,
}

impl Server {
    /// Binds `address` (port 0 picks a free port).
    pub async fn bind(address: SocketAddr, state: State) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ServerError::Bind { address, source })?;
        Ok(Self { listener, state })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` turns true.
    pub async fn serve(self, mut shutdown: watch::Receiver<bool>) {
        if let Some(addr) = self.local_addr() {
            info!(address = %addr, "HTTP server listening");
        }
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    continue;
                }
            };
            let state = self.state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(state.clone(), req));
                if let Err(e) = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    resp
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn handle(state: State, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "only GET is supported\n",
        ));
    }
    let resp = match req.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            telemetry::encode(&state.registry),
        ),
        "/healthz" => reply(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" => {
            if state.ready.load(Ordering::Acquire) {
                reply(StatusCode::OK, TEXT, "ready\n")
            } else {
                reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, "starting\n")
            }
        }
        "/api/v1/status" => {
            let snapshot = state.status.snapshot().await;
            match serde_json::to_vec_pretty(&snapshot) {
                Ok(body) => reply(StatusCode::OK, "application/json", body),
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e}\n")),
            }
        }
        "/" => {
            let snapshot = state.status.snapshot().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            match serde_json::to_value(&snapshot) {
                Ok(doc) => reply(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    page::render(&doc, now),
                ),
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e}\n")),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n"),
    };
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Fixed;
    impl StatusSource for Fixed {
        fn snapshot(&self) -> Pin<Box<dyn Future<Output = AgentStatus> + Send + '_>> {
            Box::pin(async { AgentStatus::new("test-node", 1.0) })
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn endpoints_answer() {
        let ready = Arc::new(AtomicBool::new(false));
        let state = State {
            registry: Arc::new(telemetry::base_registry()),
            ready: ready.clone(),
            status: Arc::new(Fixed),
        };
        let server = Server::bind("127.0.0.1:0".parse().expect("addr"), state)
            .await
            .expect("bind");
        let addr = server.local_addr().expect("addr");
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(server.serve(rx));

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        ready.store(true, Ordering::Release);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.contains("crowsnest_build_info"), "{metrics}");
        let status = get(addr, "/api/v1/status").await;
        assert!(status.contains("\"node\": \"test-node\""), "{status}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        let page = get(addr, "/").await;
        assert!(
            page.contains("text/html") && page.contains("crowsnest on test-node"),
            "{page}"
        );

        tx.send(true).expect("shutdown");
        task.await.expect("server task");
    }
}
