//! The connector under the pooled client: TCP (with our DNS resolver), then
//! TLS with the current configuration of the `TlsSource`.
//!
//! It is called only for new connections, so looking up the current TLS
//! configuration here (and noticing rotated files) costs nothing per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{
    DefaultServerNameResolver, FixedServerNameResolver, HttpsConnector, ResolveServerName,
};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiAddrs, GaiResolver, Name};
use tower_service::Service;

use super::error::{BoxError, DnsError};
use super::stream::Stream;
use super::tls::TlsSource;

/// Bounds connection attempts that outlive the request that started them
/// (hyper-util finishes a connect in the background to fill the pool).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// HTTP or HTTPS connector following the TLS files.
#[derive(Clone)]
pub(crate) struct Connector {
    tcp: HttpConnector<Resolver>,
    tls: Arc<TlsSource>,
    names: Arc<dyn ResolveServerName + Send + Sync>,
}

impl Connector {
    pub(crate) fn new(tls: Arc<TlsSource>) -> Self {
        let mut tcp = HttpConnector::new_with_resolver(Resolver(GaiResolver::new()));
        // The TLS layer (or plain http) is decided per URI by `HttpsConnector`.
        tcp.enforce_http(false);
        // Scrape and write requests are small; do not wait for Nagle.
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let names: Arc<dyn ResolveServerName + Send + Sync> = match tls.server_name() {
            Some(name) => Arc::new(FixedServerNameResolver::new(name.clone())),
            None => Arc::new(DefaultServerNameResolver::default()),
        };
        Self { tcp, tls, names }
    }
}

impl Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response, BoxError>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The TCP connector and our resolver are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        // Cheap: Arc clones. The `HttpsConnector` exists only to run this one connect
        // with the configuration current right now.
        let mut https = HttpsConnector::new(
            self.tcp.clone(),
            self.tls.current(),
            false,
            self.names.clone(),
        );
        let connecting = https.call(dst);
        Box::pin(async move { connecting.await.map(Stream::new) })
    }
}

/// getaddrinfo on the blocking pool, with errors wrapped as `DnsError`.
#[derive(Clone)]
pub(crate) struct Resolver(GaiResolver);

impl Service<Name> for Resolver {
    type Response = GaiAddrs;
    type Error = DnsError;
    type Future = BoxFuture<GaiAddrs, DnsError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx).map_err(DnsError)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let lookup = self.0.call(name);
        Box::pin(async move { lookup.await.map_err(DnsError) })
    }
}
