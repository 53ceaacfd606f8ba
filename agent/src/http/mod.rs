//! The one HTTP client setup shared by scraping and remote write.
//!
//! This is the remote-write branch's minimal plain-HTTP stand-in with exactly
//! the API of the real client (hyper + rustls, branch `httpc`); the real one
//! replaces this file on merge. It refuses TLS and authentication settings
//! instead of silently ignoring them.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

use crate::config::{HttpClientConfig, TlsConfig};

/// Why a request produced no response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No response (headers and body) within the timeout.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// The TCP connection could not be established.
    #[error("connection failed")]
    Connect(#[source] hyper_util::client::legacy::Error),
    /// The request failed after connecting.
    #[error("request failed")]
    Request(#[source] hyper_util::client::legacy::Error),
    /// Reading the response body failed.
    #[error("reading the response body failed")]
    Body(#[source] hyper::Error),
    /// The body is longer than the caller's limit.
    #[error("response body larger than {0} bytes")]
    BodyTooLarge(u64),
    /// The configuration needs a feature this client lacks.
    #[error("unsupported client setting: {0}")]
    Unsupported(&'static str),
}

impl HttpError {
    /// Short, bounded name of the error kind (for metric labels and logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Connect(_) => "connection_refused",
            Self::Request(_) => "request",
            Self::Body(_) => "body",
            Self::BodyTooLarge(_) => "body_too_large",
            Self::Unsupported(_) => "unsupported",
        }
    }
}

/// A received response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: http::StatusCode,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The body (at most `max_body` bytes).
    pub body: Bytes,
    /// HTTP version spoken.
    pub version: http::Version,
}

/// A cheap-to-clone HTTP client with a connection pool.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl HttpClient {
    /// Builds a client for `cfg`.
    pub fn new(cfg: &HttpClientConfig) -> Result<Self, HttpError> {
        if cfg.tls != TlsConfig::default() {
            return Err(HttpError::Unsupported("tls_config"));
        }
        if cfg.auth.is_some() {
            return Err(HttpError::Unsupported("authorization"));
        }
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build_http();
        Ok(Self { inner })
    }

    /// Sends `req` and reads the response, all within `timeout`. A body longer
    /// than `max_body` (0: unlimited) is an error, like the real client.
    pub async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
        timeout: Duration,
        max_body: u64,
    ) -> Result<Response, HttpError> {
        let exchange = async {
            let resp = self.inner.request(req).await.map_err(|e| {
                if e.is_connect() {
                    HttpError::Connect(e)
                } else {
                    HttpError::Request(e)
                }
            })?;
            let (parts, mut body) = resp.into_parts();
            let limit = if max_body == 0 { u64::MAX } else { max_body };
            let mut buf = BytesMut::new();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.map_err(HttpError::Body)?.into_data() {
                    if (buf.len() + data.len()) as u64 > limit {
                        return Err(HttpError::BodyTooLarge(max_body));
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body: buf.freeze(),
                version: parts.version,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout(timeout))?
    }
}
