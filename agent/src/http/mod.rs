//! The one HTTP client setup (hyper + rustls) shared by scraping and remote write.
//!
//! - `tls`: rustls `ClientConfig` from `tls_config:` (ring provider; CA bundle or
//!   system roots; mTLS; `server_name`; `insecure_skip_verify`), rebuilt when
//!   the files rotate.
//! - `auth`: the `Authorization` header, credential files re-read on change.
//! - `connector`: TCP + TLS for new pooled connections (DNS errors tagged);
//!   `stream` keeps TLS errors that HTTP/2 would flatten to text.
//! - `body`: bounded body reading with gzip decoding.
//! - `client`: [`HttpClient::send`] tying these together under one timeout.
//! - `session`: [`Session`], one URL fetched again and again (a scrape
//!   target) on a connection of its own, driven by the fetching task; `h1`
//!   speaks HTTP/1.1 on it, reading bodies straight into their buffers.
//! - `error`: [`HttpError`] and its bounded [`HttpError::kind`] for metric labels.
//!
//! Build one client per config (at start, so bad files fail early) and clone
//! it freely; clones share the connection pool:
//!
//! ```no_run
//! # async fn scrape(cfg: &crowsnest::config::HttpClientConfig) -> Result<(), crowsnest::http::HttpError> {
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::Full;
//!
//! let client = crowsnest::http::HttpClient::new(cfg)?;
//! let req = http::Request::get("https://10.0.0.7:10250/metrics")
//!     .header(http::header::ACCEPT_ENCODING, "gzip")
//!     .body(Full::new(Bytes::new()))
//!     .map_err(|e| crowsnest::http::HttpError::InvalidRequest { reason: e.to_string() })?;
//! match client.send(req, Duration::from_secs(10), 64 << 20).await {
//!     Ok(resp) => println!("{} {} bytes", resp.status, resp.body.len()),
//!     Err(e) => eprintln!("scrape failed ({}): {e}", e.kind()),
//! }
//! # Ok(()) }
//! ```
//!
//! TLS files and credential files are checked for changes at most every few
//! seconds; new connections use the new files, pooled ones finish their life
//! with the old (as Prometheus does).

mod auth;
mod body;
mod client;
mod connector;
mod error;
mod h1;
mod reload;
mod session;
mod stream;
mod tls;

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
pub(crate) mod tests;

pub use client::{HttpClient, Response, peer};
pub use error::{HttpError, TransportKind};
pub use session::Session;
