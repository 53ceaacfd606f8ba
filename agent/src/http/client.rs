//! `HttpClient`: one pooled hyper client per HTTP client config, shared by
//! every scrape of a job or every shard of a remote-write endpoint.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH};
use http::uri::Scheme;
use http::{HeaderMap, Request, StatusCode, Uri, Version};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::auth::AuthHeader;
use super::body::{self, BufferPool, Encoding};
use super::connector::Connector;
use super::error::HttpError;
use super::reload::DEFAULT_CHECK_INTERVAL;
use super::session::Session;
use super::tls::TlsSource;
use crate::config::HttpClientConfig;

/// Idle connections are closed after this long: under common server
/// keep-alive timeouts (nginx 75 s), so we rarely pick a pooled connection the
/// server is closing, yet long enough to span a 30 s scrape interval.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle connections kept per host. Scrapes use one connection per target at a
/// time; remote write uses up to one per shard, and HTTP/2 multiplexes anyway.
const POOL_MAX_IDLE_PER_HOST: usize = 32;

/// Most bytes an HTTP/1 connection buffers from the socket. hyper's default
/// (~400 KiB) is reached by any large scrape body and then kept for the life
/// of the pooled connection, one per target: 40 MB at 100 targets. The body
/// is copied out in chunks anyway, so a smaller buffer only means a few more
/// reads per body. Response headers must fit in it too.
const HTTP1_MAX_BUF: usize = 64 * 1024;

/// HTTP/2 pings on idle-looking connections, so a remote-write connection
/// silently dropped by a load balancer fails fast instead of at the next
/// request's timeout.
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A response with its body read (and decoded) in full.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers. When the body was gzip-decoded, `Content-Encoding`
    /// and `Content-Length` are removed since they no longer describe `body`.
    pub headers: HeaderMap,
    /// The (decoded) body.
    pub body: Bytes,
    /// HTTP version the exchange used (HTTP/2 when the server chose `h2` by ALPN).
    pub version: Version,
}

/// HTTP/1.1 and HTTP/2 client with TLS, authentication, timeouts and body
/// limits. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Mutex<Pool>,
    tls: Arc<TlsSource>,
    auth: Option<AuthHeader>,
    /// Buffers of bodies handed back with [`HttpClient::give_back`].
    bodies: BufferPool,
}

/// The connection pool and the TLS configuration its connections were made
/// with. A pooled HTTP/2 connection lives as long as it is used, so when the
/// TLS files change (a rotated or replaced client certificate) the pool is
/// replaced: requests from then on use connections with the new files, and
/// the old connections close once their requests finish.
struct Pool {
    config: Arc<rustls::ClientConfig>,
    client: Client<Connector, Full<Bytes>>,
}

fn build_pool(tls: &Arc<TlsSource>) -> Pool {
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        // Without a timer the idle timeout is never enforced.
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http1_max_buf_size(HTTP1_MAX_BUF)
        .http2_keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .http2_keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
        .build(Connector::new(tls.clone()));
    Pool {
        config: tls.current(),
        client,
    }
}

impl HttpClient {
    /// Builds the client, reading every TLS file now: an unreadable or invalid
    /// CA, certificate or key fails here, naming the file (never its
    /// contents). A credential file that cannot be read yet only fails the
    /// requests (kind `credentials`) until it appears, so one job's missing
    /// token does not stop the agent.
    pub fn new(cfg: &HttpClientConfig) -> Result<Self, HttpError> {
        Self::with_check_interval(cfg, DEFAULT_CHECK_INTERVAL)
    }

    /// Like `new`, with the interval at which rotated files are looked at.
    pub(crate) fn with_check_interval(
        cfg: &HttpClientConfig,
        check_every: Duration,
    ) -> Result<Self, HttpError> {
        let tls = Arc::new(TlsSource::new(&cfg.tls, check_every)?);
        let auth = cfg
            .auth
            .as_ref()
            .map(|a| AuthHeader::new(a, check_every))
            .transpose()?;
        let pool = Mutex::new(build_pool(&tls));
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                tls,
                auth,
                bodies: BufferPool::default(),
            }),
        })
    }

    /// The pool for the TLS files as they are now (see [`Pool`]).
    fn client(&self) -> Client<Connector, Full<Bytes>> {
        let current = self.inner.tls.current();
        let mut pool = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&pool.config, &current) {
            *pool = build_pool(&self.inner.tls);
        }
        pool.client.clone()
    }

    /// Sends `req` (the configured `Authorization` header replaces any the
    /// request has), waits at most `timeout` for the whole exchange including
    /// the body, reads at most `max_body` bytes of decoded body (0 = unlimited)
    /// and decodes `Content-Encoding: gzip`.
    ///
    /// The URI must be absolute (`http://` or `https://`). This does not add
    /// `Accept-Encoding`: callers that want compressed responses ask for them.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
        max_body: u64,
    ) -> Result<Response, HttpError> {
        let target = peer(req.uri())?;
        self.send_to(req, &target, timeout, max_body).await
    }

    /// [`HttpClient::send`] for a request whose [`peer`] the caller worked out
    /// once (a scrape target's), named in errors as `target`.
    pub async fn send_to(
        &self,
        mut req: Request<Full<Bytes>>,
        target: &str,
        timeout: Duration,
        max_body: u64,
    ) -> Result<Response, HttpError> {
        self.authorize(req.headers_mut())?;
        match tokio::time::timeout(timeout, self.exchange(req, target, max_body)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(HttpError::Timeout {
                target: target.to_owned(),
                after: timeout,
            }),
        }
    }

    /// Hands a response body back once it is no longer needed, so that a
    /// later response reuses its buffer instead of fresh pages. Callers that
    /// read many large bodies (scrapes) do this; dropping a body is fine too.
    pub fn give_back(&self, body: Bytes) {
        self.inner.bodies.give_back(body);
    }

    /// A session fetching `uri` over a connection of its own (see [`Session`]).
    pub fn session(&self, uri: Uri) -> Result<Session, HttpError> {
        Session::new(self.clone(), uri)
    }

    /// Sets the configured `Authorization` header, replacing any given.
    pub(crate) fn authorize(&self, headers: &mut HeaderMap) -> Result<(), HttpError> {
        if let Some(auth) = &self.inner.auth {
            headers.insert(AUTHORIZATION, auth.value()?);
        }
        Ok(())
    }

    /// The TLS configuration for the files as they are now.
    pub(crate) fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.inner.tls.current()
    }

    /// Where response bodies are read into and handed back to.
    pub(crate) fn body_pool(&self) -> &BufferPool {
        &self.inner.bodies
    }

    /// A connector for connections outside the pool, following the TLS files.
    pub(crate) fn connector(&self) -> Connector {
        Connector::new(self.inner.tls.clone())
    }

    /// `req` through the pool, without timeout or authorization (the caller's).
    pub(crate) async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
        target: &str,
        max_body: u64,
    ) -> Result<Response, HttpError> {
        let response = self
            .client()
            .request(req)
            .await
            .map_err(|e| HttpError::client(target, e))?;
        let (mut parts, incoming) = response.into_parts();
        let encoding = Encoding::of(&parts.headers, target)?;
        let body = body::read(
            incoming,
            &parts.headers,
            encoding,
            max_body,
            target,
            &self.inner.bodies,
        )
        .await?;
        if encoding == Encoding::Gzip {
            parts.headers.remove(CONTENT_ENCODING);
            parts.headers.remove(CONTENT_LENGTH);
        }
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
            version: parts.version,
        })
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("tls", &self.inner.tls)
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

/// `scheme://host[:port]` of an absolute `http://` or `https://` URI, as
/// errors name it: never the path or query (which may carry tokens) nor
/// userinfo. Fails for any other URI, which [`HttpClient::send`] refuses.
pub fn peer(uri: &Uri) -> Result<String, HttpError> {
    let scheme = uri.scheme().ok_or_else(|| HttpError::InvalidRequest {
        reason: "URI has no scheme (need http:// or https://)".into(),
    })?;
    if *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS {
        return Err(HttpError::InvalidRequest {
            reason: format!("unsupported scheme {scheme:?} (need http or https)"),
        });
    }
    let host = uri.host().ok_or_else(|| HttpError::InvalidRequest {
        reason: "URI has no host".into(),
    })?;
    Ok(match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests {
    use super::*;

    #[test]
    fn target_hides_userinfo_path_and_query() {
        let uri: Uri = "https://user:pw@example.com:8443/metrics?token=abc"
            .parse()
            .unwrap();
        assert_eq!(peer(&uri).unwrap(), "https://example.com:8443");
        let uri: Uri = "http://[::1]/x".parse().unwrap();
        assert_eq!(peer(&uri).unwrap(), "http://[::1]");
        for bad in ["/metrics", "ftp://h/x"] {
            let err = peer(&bad.parse().unwrap()).unwrap_err();
            assert_eq!(err.kind(), "invalid_request");
        }
    }
}
