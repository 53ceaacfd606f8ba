//! `Session`: one URL fetched again and again (a scrape target) over a
//! connection of its own, driven by the task that fetches.
//!
//! The pooled client spawns a task per connection and hands each request and
//! every body chunk across to it, reading into a buffer of its own first; a
//! scrape then paid a pool checkout, two tasks' polls and wake-ups, and a
//! copy of its body. A target is fetched by one task, one request at a time,
//! so that task speaks HTTP/1.1 on the connection itself ([`super::h1`]) and
//! reads the body straight into the buffer the scrape parses. A server that
//! chooses HTTP/2 (by ALPN) is fetched through the pooled client instead,
//! which multiplexes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, HOST};
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::connect::Connection as _;
use tower_service::Service;

use super::body::{Collector, Encoding};
use super::client::{HttpClient, POOL_IDLE_TIMEOUT, Response};
use super::connector::Connector;
use super::error::HttpError;
use super::h1::{self, Failure};
use super::stream::TlsErrorSlot;

/// Repeated GETs of one URL (see the module docs).
pub struct Session {
    client: HttpClient,
    /// The absolute URL, for the pooled client.
    uri: Uri,
    /// The origin form (`/path?query`) sent on our own connection.
    origin: PathAndQuery,
    host: HeaderValue,
    /// `scheme://host[:port]`, as errors name the target.
    peer: String,
    connector: Connector,
    conn: Option<Conn>,
    /// The server chose HTTP/2: fetch through the pooled client.
    pooled: bool,
}

/// An open HTTP/1.1 connection and what it was opened with.
struct Conn {
    io: h1::Connection,
    /// The TLS configuration it was opened with; a newer one replaces it.
    tls: Arc<rustls::ClientConfig>,
    slot: TlsErrorSlot,
    /// Requests it answered: a failure on a connection that answered before
    /// may be the server closing it while idle.
    served: u32,
    idle_since: Instant,
}

/// How one attempt on a connection ended.
enum Attempt {
    Done(Result<Response, HttpError>),
    /// A reused connection failed before any response arrived: the server
    /// had closed it while idle. The request is sent again on a new one.
    Stale(HttpError),
}

impl Session {
    /// A session fetching `uri`, which must be absolute `http://` or `https://`.
    pub(crate) fn new(client: HttpClient, uri: Uri) -> Result<Self, HttpError> {
        let peer = super::peer(&uri)?;
        let origin = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let host = host_header(&uri)?;
        let connector = client.connector();
        Ok(Self {
            client,
            uri,
            origin,
            host,
            peer,
            connector,
            conn: None,
            pooled: false,
        })
    }

    /// `scheme://host[:port]` of the URL, as errors name it.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// GETs the URL with `headers` (the configured `Authorization` replaces
    /// any given), as [`HttpClient::send`] does: within `timeout`, at most
    /// `max_body` decoded bytes (0 = unlimited), gzip decoded.
    pub async fn get(
        &mut self,
        headers: &HeaderMap,
        timeout: Duration,
        max_body: u64,
    ) -> Result<Response, HttpError> {
        match tokio::time::timeout(timeout, self.exchange(headers, max_body)).await {
            Ok(result) => result,
            // A connection dropped mid-exchange is closed with it.
            Err(_elapsed) => Err(HttpError::Timeout {
                target: self.peer.clone(),
                after: timeout,
            }),
        }
    }

    async fn exchange(
        &mut self,
        headers: &HeaderMap,
        max_body: u64,
    ) -> Result<Response, HttpError> {
        if !self.pooled {
            if let Some(mut conn) = self.conn.take()
                && conn.usable(&self.client.tls_config())
            {
                match self.attempt(conn, headers, max_body).await {
                    Attempt::Done(result) => return result,
                    Attempt::Stale(err) => {
                        tracing::debug!(target = %self.peer, error = %err, "idle connection was closed, reconnecting");
                    }
                }
            }
            if let Some(conn) = self.connect().await? {
                return match self.attempt(conn, headers, max_body).await {
                    Attempt::Done(result) => result,
                    Attempt::Stale(err) => Err(err),
                };
            }
            // The server chose HTTP/2, which the pooled client multiplexes.
            self.pooled = true;
        }
        let req = self.request(self.uri.clone(), headers)?;
        self.client.exchange(req, &self.peer, max_body).await
    }

    /// The headers sent: the caller's, `Host` and the configured `Authorization`.
    fn headers(&self, headers: &HeaderMap) -> Result<HeaderMap, HttpError> {
        let mut headers = headers.clone();
        headers.insert(HOST, self.host.clone());
        self.client.authorize(&mut headers)?;
        Ok(headers)
    }

    fn request(&self, uri: Uri, headers: &HeaderMap) -> Result<Request<Full<Bytes>>, HttpError> {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.method_mut() = Method::GET;
        *req.uri_mut() = uri;
        *req.headers_mut() = self.headers(headers)?;
        Ok(req)
    }

    /// Opens a connection; `None` when the server chose HTTP/2.
    async fn connect(&mut self) -> Result<Option<Conn>, HttpError> {
        let tls = self.client.tls_config();
        let stream = self
            .connector
            .call(self.uri.clone())
            .await
            .map_err(|e| HttpError::transport(&self.peer, e))?;
        if stream.connected().is_negotiated_h2() {
            return Ok(None);
        }
        let slot = stream.slot();
        Ok(Some(Conn {
            io: h1::Connection::new(stream),
            tls,
            slot,
            served: 0,
            idle_since: Instant::now(),
        }))
    }

    /// One request on `conn`, which is kept for the next if it stays open.
    async fn attempt(&mut self, mut conn: Conn, headers: &HeaderMap, max_body: u64) -> Attempt {
        let headers = match self.headers(headers) {
            Ok(headers) => headers,
            Err(e) => {
                self.conn = Some(conn);
                return Attempt::Done(Err(e));
            }
        };
        let peer = self.peer.as_str();
        let io = &mut conn.io;
        let outcome = async {
            io.send_get(self.origin.as_str(), &headers).await?;
            let head = io.read_head().await?;
            let encoding = Encoding::of(&head.headers, peer).map_err(Failure::Body)?;
            let mut body = Collector::new(
                &head.headers,
                encoding,
                max_body,
                peer,
                self.client.body_pool(),
            )
            .map_err(Failure::Body)?;
            let reusable = io.read_body(&head, &mut body).await?;
            let body = body.finish().map_err(Failure::Body)?;
            let mut headers = head.headers;
            if encoding == Encoding::Gzip {
                headers.remove(CONTENT_ENCODING);
                headers.remove(CONTENT_LENGTH);
            }
            let response = Response {
                status: head.status,
                headers,
                body,
                version: head.version,
            };
            Ok::<_, Failure>((response, reusable))
        }
        .await;
        match outcome {
            Ok((response, reusable)) => {
                if reusable {
                    conn.served += 1;
                    conn.idle_since = Instant::now();
                    self.conn = Some(conn);
                }
                Attempt::Done(Ok(response))
            }
            // The connection is mid-response, or its state unknown: it goes.
            Err(Failure::Body(err)) => Attempt::Done(Err(err)),
            Err(Failure::Protocol(err)) => Attempt::Done(Err(HttpError::transport(peer, err))),
            Err(Failure::Io(err)) => {
                let stale = conn.served > 0 && !conn.io.has_buffered() && closed_while_idle(&err);
                let err = HttpError::transport(peer, err).with_recorded(conn.slot.get());
                if stale {
                    Attempt::Stale(err)
                } else {
                    Attempt::Done(Err(err))
                }
            }
        }
    }
}

impl Conn {
    /// Whether the connection may take another request: made with the
    /// current TLS files, not idle so long the server may be closing it,
    /// and not closed by the server meanwhile.
    fn usable(&mut self, tls: &Arc<rustls::ClientConfig>) -> bool {
        Arc::ptr_eq(&self.tls, tls)
            && self.idle_since.elapsed() < POOL_IDLE_TIMEOUT
            && self.io.is_idle_and_open()
    }
}

/// True for the ways a request fails on a connection the server closed
/// while it sat idle (hyper-util's pool retries the same).
fn closed_while_idle(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionAborted
    )
}

/// The `Host` header for `uri`: its host, and its port unless the scheme's default.
fn host_header(uri: &Uri) -> Result<HeaderValue, HttpError> {
    let invalid = |reason: &str| HttpError::InvalidRequest {
        reason: reason.to_owned(),
    };
    let host = uri.host().ok_or_else(|| invalid("URI has no host"))?;
    let default_port = if uri.scheme() == Some(&Scheme::HTTPS) {
        443
    } else {
        80
    };
    let value = match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::try_from(value).map_err(|_| invalid("host is not a valid Host header"))
}
