//! Errors of the HTTP client, and their classification into a bounded set of
//! kinds for metric labels.
//!
//! Transport failures arrive as a chain (`hyper_util` legacy error -> boxed
//! connector error -> `io::Error` -> `rustls::Error`, or a DNS error). We walk
//! the chain once, when the error is built, so callers get a precise kind and an
//! actionable message without knowing hyper's internals.

use std::error::Error as StdError;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::{AlertDescription, CertificateError};

use super::stream::TlsErrorSlot;

/// The boxed error type of connectors and bodies.
pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// Why building the client or one exchange failed.
///
/// Messages name files, hosts and settings but never secrets, certificate or
/// key contents, URL paths or query strings.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// A TLS setting or file is unusable.
    #[error("tls_config.{field}{}: {reason}", path_suffix(path.as_deref()))]
    Config {
        /// The `tls_config` field at fault (`ca_file`, `cert_file`, ...).
        field: &'static str,
        /// The file, when the field names one.
        path: Option<PathBuf>,
        /// What is wrong, in words (never the file's contents).
        reason: String,
    },
    /// A credential could not be read or is not usable in a header.
    #[error("{}: {source}", credential_name(path.as_deref()))]
    Credentials {
        /// The credential file; `None` for an inline credential.
        path: Option<PathBuf>,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// The request cannot be sent as given (no scheme/host, unsupported scheme).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
    /// The whole exchange (connect, TLS, request, response body) took too long.
    #[error("request to {target} timed out after {after:?}")]
    Timeout {
        /// `scheme://host:port` of the request.
        target: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The (decoded) response body is larger than allowed.
    #[error("response body from {target} exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// `scheme://host:port` of the request.
        target: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The response body could not be decoded.
    #[error("cannot decode {encoding} response body from {target}: {source}")]
    Decode {
        /// `scheme://host:port` of the request.
        target: String,
        /// The `Content-Encoding` at fault.
        encoding: String,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// Connecting, the TLS handshake, or the HTTP exchange failed.
    #[error("request to {target} failed: {} ({detail})", kind.hint())]
    Transport {
        /// The classified cause.
        kind: TransportKind,
        /// `scheme://host:port` of the request.
        target: String,
        /// The innermost causes, joined; from network libraries only, so no secrets.
        detail: String,
        /// The original error.
        #[source]
        source: BoxError,
    },
}

fn path_suffix(path: Option<&Path>) -> String {
    path.map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

fn credential_name(path: Option<&Path>) -> String {
    match path {
        Some(p) => format!("credential file {}", p.display()),
        None => "inline credential".to_owned(),
    }
}

impl HttpError {
    /// A short, bounded name of the failure, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config { .. } => "config",
            Self::Credentials { .. } => "credentials",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Timeout { .. } => "timeout",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::Decode { .. } => "decode",
            Self::Transport { kind, .. } => kind.as_str(),
        }
    }

    /// Classifies an error of the pooled client, preferring a TLS error that
    /// the connection recorded (see `stream`) over what the chain still says.
    pub(crate) fn client(target: &str, err: hyper_util::client::legacy::Error) -> Self {
        let recorded = err.connect_info().and_then(|info| {
            let mut extras = http::Extensions::new();
            info.get_extras(&mut extras);
            extras.get::<TlsErrorSlot>().and_then(TlsErrorSlot::get)
        });
        Self::transport(target, err).with_recorded(recorded)
    }

    /// Prefers `recorded`, the TLS error a connection's stream kept (see
    /// `stream`), over what a transport error's chain still says.
    pub(crate) fn with_recorded(mut self, recorded: Option<rustls::Error>) -> Self {
        if let (Some(tls), Self::Transport { kind, detail, .. }) = (recorded, &mut self) {
            *kind = classify_tls(&tls);
            *detail = tls.to_string();
        }
        self
    }

    /// Classifies a transport error (from the client or a response body).
    pub(crate) fn transport(target: &str, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        let kind = classify(source.as_ref());
        let detail = detail(source.as_ref());
        Self::Transport {
            kind,
            target: target.to_owned(),
            detail,
            source,
        }
    }
}

/// The classified cause of a transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// Nothing listens on the port.
    ConnectionRefused,
    /// The peer closed or reset the connection before the response was complete.
    ConnectionClosed,
    /// The host name did not resolve.
    Dns,
    /// A socket operation timed out (e.g. connect) before the request timeout.
    Timeout,
    /// The server certificate is not signed by a trusted CA.
    UnknownCa,
    /// The server certificate is not valid for the name we verify.
    TlsNameMismatch,
    /// The server certificate is expired or not yet valid.
    TlsCertExpired,
    /// The server rejected our client certificate (or that we sent none).
    BadCertificate,
    /// Any other TLS failure.
    TlsHandshake,
    /// The peer spoke malformed HTTP.
    HttpProtocol,
    /// Any other I/O failure.
    Io,
}

impl TransportKind {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionRefused => "connection_refused",
            Self::ConnectionClosed => "connection_closed",
            Self::Dns => "dns",
            Self::Timeout => "timeout",
            Self::UnknownCa => "unknown_ca",
            Self::TlsNameMismatch => "tls_name_mismatch",
            Self::TlsCertExpired => "tls_cert_expired",
            Self::BadCertificate => "bad_certificate",
            Self::TlsHandshake => "tls_handshake",
            Self::HttpProtocol => "http_protocol",
            Self::Io => "io",
        }
    }

    /// What to tell the operator.
    fn hint(self) -> &'static str {
        match self {
            Self::ConnectionRefused => "connection refused (is the target listening on that port?)",
            Self::ConnectionClosed => "connection closed before the response was complete",
            Self::Dns => "host name did not resolve",
            Self::Timeout => "socket operation timed out",
            Self::UnknownCa => {
                "server certificate is not signed by a trusted CA (check tls_config.ca_file)"
            }
            Self::TlsNameMismatch => {
                "server certificate does not match the host name \
                 (check the target address or tls_config.server_name)"
            }
            Self::TlsCertExpired => "server certificate is expired or not yet valid",
            Self::BadCertificate => {
                "server rejected our client certificate \
                 (check tls_config.cert_file/key_file and the server's client CA)"
            }
            Self::TlsHandshake => "TLS handshake failed",
            Self::HttpProtocol => "malformed HTTP from the server",
            Self::Io => "I/O error",
        }
    }
}

/// A response that breaks HTTP/1.1 framing, as our own reader finds it.
#[derive(thiserror::Error, Debug)]
#[error("malformed HTTP/1.1 response: {0}")]
pub(crate) struct ProtocolError(pub(crate) &'static str);

/// DNS failures, wrapped by our resolver so they can be told apart from other
/// connect errors without matching on hyper-util's message strings.
#[derive(thiserror::Error, Debug)]
#[error("cannot resolve host name: {0}")]
pub(crate) struct DnsError(#[source] pub(crate) io::Error);

/// The next error of a chain. `io::Error::source` skips the error it wraps,
/// so for those we step into `get_ref` (where rustls errors live); `h2::Error`
/// has no `source` at all, only `get_io` (TLS alerts on HTTP/2 connections).
fn next<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    if let Some(io) = e.downcast_ref::<io::Error>()
        && let Some(inner) = io.get_ref()
    {
        return Some(inner);
    }
    if let Some(h2) = e.downcast_ref::<h2::Error>()
        && let Some(io) = h2.get_io()
    {
        return Some(io);
    }
    e.source()
}

fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> + 'a {
    std::iter::successors(Some(e), |&e: &&'a (dyn StdError + 'static)| next(e))
}

/// Walks the chain: a DNS or TLS error anywhere is decisive; I/O kinds and
/// hyper's flags are fallbacks, the outermost one winning.
pub(crate) fn classify(err: &(dyn StdError + 'static)) -> TransportKind {
    let mut fallback = None;
    for e in chain(err) {
        if e.is::<DnsError>() {
            return TransportKind::Dns;
        }
        if e.is::<ProtocolError>() {
            return TransportKind::HttpProtocol;
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return classify_tls(tls);
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            let kind = match io.kind() {
                io::ErrorKind::ConnectionRefused => return TransportKind::ConnectionRefused,
                io::ErrorKind::TimedOut => TransportKind::Timeout,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => TransportKind::ConnectionClosed,
                _ => TransportKind::Io,
            };
            fallback.get_or_insert(kind);
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            if h2.is_library() {
                return TransportKind::HttpProtocol;
            }
            if h2.is_go_away() || h2.is_reset() {
                fallback.get_or_insert(TransportKind::ConnectionClosed);
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_parse_status() || h.is_parse_too_large() {
                return TransportKind::HttpProtocol;
            }
            if h.is_timeout() {
                fallback.get_or_insert(TransportKind::Timeout);
            } else if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
                fallback.get_or_insert(TransportKind::ConnectionClosed);
            }
        }
    }
    fallback.unwrap_or(TransportKind::Io)
}

fn classify_tls(err: &rustls::Error) -> TransportKind {
    use AlertDescription as A;
    match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            TransportKind::UnknownCa
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => TransportKind::TlsNameMismatch,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => TransportKind::TlsCertExpired,
        // Alerts the server sends when it does not accept our client certificate.
        rustls::Error::AlertReceived(
            A::BadCertificate
            | A::CertificateRequired
            | A::UnknownCA
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::AccessDenied,
        ) => TransportKind::BadCertificate,
        _ => TransportKind::TlsHandshake,
    }
}

/// The messages of the chain below hyper-util's generic wrapper, joined.
/// Consecutive duplicates are dropped (io wrappers often repeat their inner
/// error's message).
fn detail(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain(err) {
        if e.is::<hyper_util::client::legacy::Error>() {
            continue;
        }
        let msg = e.to_string();
        if parts.last().is_none_or(|last| !last.contains(&msg)) {
            parts.push(msg);
        }
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests {
    use super::*;

    fn tls_io(e: rustls::Error) -> BoxError {
        // The shape hyper-rustls produces: io::Error::other(io::Error(InvalidData, rustls)).
        Box::new(io::Error::other(io::Error::new(
            io::ErrorKind::InvalidData,
            e,
        )))
    }

    #[test]
    fn classification_table() {
        let cases: Vec<(BoxError, &str)> = vec![
            (
                Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
                "connection_refused",
            ),
            (
                Box::new(io::Error::from(io::ErrorKind::TimedOut)),
                "timeout",
            ),
            (
                Box::new(io::Error::from(io::ErrorKind::ConnectionReset)),
                "connection_closed",
            ),
            (Box::new(io::Error::other("boom")), "io"),
            (Box::new(DnsError(io::Error::other("no such host"))), "dns"),
            (
                tls_io(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                )),
                "unknown_ca",
            ),
            (
                tls_io(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName,
                )),
                "tls_name_mismatch",
            ),
            (
                tls_io(rustls::Error::InvalidCertificate(CertificateError::Expired)),
                "tls_cert_expired",
            ),
            (
                tls_io(rustls::Error::AlertReceived(
                    AlertDescription::CertificateRequired,
                )),
                "bad_certificate",
            ),
            (
                tls_io(rustls::Error::AlertReceived(
                    AlertDescription::BadCertificate,
                )),
                "bad_certificate",
            ),
            (
                tls_io(rustls::Error::AlertReceived(
                    AlertDescription::HandshakeFailure,
                )),
                "tls_handshake",
            ),
        ];
        for (err, want) in cases {
            let got = HttpError::transport("https://h:1", err);
            assert_eq!(got.kind(), want, "{got}");
        }
    }

    #[test]
    fn messages_name_the_cause() {
        let err = HttpError::transport(
            "https://h:1",
            tls_io(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        );
        let msg = err.to_string();
        assert!(msg.contains("https://h:1"), "{msg}");
        assert!(msg.contains("tls_config.ca_file"), "{msg}");
        assert!(msg.contains("UnknownIssuer"), "{msg}");

        let err = HttpError::Config {
            field: "cert_file",
            path: Some(PathBuf::from("/etc/c.pem")),
            reason: "no certificate found".into(),
        };
        assert_eq!(
            err.to_string(),
            "tls_config.cert_file /etc/c.pem: no certificate found"
        );
        assert_eq!(err.kind(), "config");
    }
}
