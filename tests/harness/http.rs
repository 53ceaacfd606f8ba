//! A small HTTP/1 client for talking to the processes under test.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long one request may take before the test gives up on it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Plain-HTTP client. Make one per test: its pooled connections belong to the runtime that
/// created them, and each `#[tokio::test]` has its own runtime.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with default settings.
    pub fn new() -> Self {
        Self {
            inner: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// `GET url`.
    ///
    /// # Errors
    /// On connection failure or timeout; any status is a success here.
    pub async fn get(&self, url: &str) -> Result<Response> {
        let request = Request::get(url)
            .body(Full::default())
            .context("build GET request")?;
        self.send(request).await
    }

    /// `POST url` with `headers` and `body`.
    ///
    /// # Errors
    /// On connection failure or timeout; any status is a success here.
    pub async fn post(&self, url: &str, headers: &[(&str, &str)], body: Bytes) -> Result<Response> {
        let mut builder = Request::builder().method(Method::POST).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(body))
            .context("build POST request")?;
        self.send(request).await
    }

    /// Sends any request and reads the whole response.
    ///
    /// # Errors
    /// On connection failure or timeout.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response> {
        let what = format!("{} {}", request.method(), request.uri());
        let exchange = async {
            let response = self.inner.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .with_context(|| format!("{what}: no response within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("{what} failed"))
    }
}
