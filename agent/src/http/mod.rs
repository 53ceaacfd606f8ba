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
//! - `error`: [`HttpError`] and its bounded [`HttpError::kind`] for metric labels.

mod auth;
mod body;
mod client;
mod connector;
mod error;
mod reload;
mod stream;
mod tls;

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests;

pub use client::{HttpClient, Response};
pub use error::{HttpError, TransportKind};
