//! In-process test servers: hyper (HTTP/1.1 + HTTP/2) over TCP or
//! tokio-rustls, and a raw TCP server for misbehaving peers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::pki::{Ca, Leaf};

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) version: Version,
    /// The request target as sent (origin form `/path?query`, or absolute).
    pub(crate) uri: String,
    pub(crate) host: Option<String>,
    pub(crate) authorization: Option<String>,
}

pub(crate) type Handler = Arc<dyn Fn(&http::request::Parts) -> Response<Full<Bytes>> + Send + Sync>;

pub(crate) fn ok(body: &'static str) -> Handler {
    Arc::new(move |_| Response::new(Full::new(Bytes::from_static(body.as_bytes()))))
}

/// A running server; stops when dropped.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
    pub(crate) connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub(crate) fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}/metrics", self.addr)
    }

    pub(crate) fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no request seen")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Client certificate policy of a TLS test server.
pub(crate) enum ClientAuth<'a> {
    None,
    Required(&'a Ca),
}

pub(crate) fn tls_config(
    leaf: &Leaf,
    client_auth: ClientAuth<'_>,
    alpn: &[&[u8]],
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Required(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der.clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(vec![leaf.cert_der.clone()], leaf.key())
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Serves `handler` over HTTP/1.1 and HTTP/2, with TLS when `tls` is given.
pub(crate) async fn serve(tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let task = {
        let seen = seen.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let (seen, handler, acceptor) = (seen.clone(), handler.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        // Handshake failures are what some tests are about; the client reports them.
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve_conn(stream, handler, seen).await;
                            }
                        }
                        None => serve_conn(tcp, handler, seen).await,
                    }
                });
            }
        })
    };
    TestServer {
        addr,
        seen,
        connections,
        task,
    }
}

async fn serve_conn<IO>(io: IO, handler: Handler, seen: Arc<Mutex<Vec<Seen>>>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: http::Request<Incoming>| {
        let (parts, _body) = req.into_parts();
        let header = |name| {
            parts
                .headers
                .get(name)
                .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
        };
        seen.lock().unwrap().push(Seen {
            version: parts.version,
            uri: parts.uri.to_string(),
            host: header(http::header::HOST),
            authorization: header(http::header::AUTHORIZATION),
        });
        let response = handler(&parts);
        async move { Ok::<_, Infallible>(response) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A raw TCP server: reads the request head, then writes `response` and
/// closes, or (for `None`) holds the connection open without answering.
pub(crate) struct RawServer {
    pub(crate) addr: SocketAddr,
    /// Connections accepted so far.
    pub(crate) accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn raw(response: Option<Vec<u8>>) -> RawServer {
    raw_lingering(response, Duration::ZERO).await
}

/// [`raw`], closing each connection `linger` after answering: long enough
/// for the client to take the connection as idle and kept.
pub(crate) async fn raw_lingering(response: Option<Vec<u8>>, linger: Duration) -> RawServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            match &response {
                Some(bytes) => {
                    let _ = tcp.write_all(bytes).await;
                    if linger.is_zero() {
                        let _ = tcp.shutdown().await;
                    } else {
                        tokio::spawn(async move {
                            tokio::time::sleep(linger).await;
                            let _ = tcp.shutdown().await;
                        });
                    }
                }
                // Keep the socket open (and silent) until the server is dropped.
                None => held.push(tcp),
            }
        }
    });
    RawServer {
        addr,
        accepted,
        task,
    }
}

/// Waits briefly so a rotated file's new stamp is observable even on file
/// systems with coarse timestamps (the inode changes anyway with rename).
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}
