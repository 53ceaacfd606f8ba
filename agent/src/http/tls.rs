//! rustls client configuration from `tls_config:`, rebuilt when its files rotate.
//!
//! Only the ring provider is used (no OpenSSL, no aws-lc). The configuration is
//! built once at start (so unusable files fail the start, naming the file) and
//! then only when a stamp of the CA, certificate or key file changes; requests
//! share the same `Arc<ClientConfig>` in between.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::error::HttpError;
use super::reload::{CheckClock, FileStamp};
use crate::config::TlsConfig;

/// ALPN offers: HTTP/2 first, HTTP/1.1 for servers without it.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A `ClientConfig` that follows its files.
pub(crate) struct TlsSource {
    settings: TlsConfig,
    server_name: Option<ServerName<'static>>,
    state: Mutex<State>,
}

struct State {
    config: Arc<ClientConfig>,
    stamps: Vec<Option<FileStamp>>,
    clock: CheckClock,
}

impl TlsSource {
    /// Builds the configuration now; any unusable file or setting is an error.
    pub(crate) fn new(settings: &TlsConfig, check_every: Duration) -> Result<Self, HttpError> {
        let server_name = match &settings.server_name {
            Some(name) => {
                Some(
                    ServerName::try_from(name.clone()).map_err(|_| HttpError::Config {
                        field: "server_name",
                        path: None,
                        reason: format!("{name:?} is not a valid DNS name or IP address"),
                    })?,
                )
            }
            None => None,
        };
        let stamps = FileStamp::of_all(&files(settings));
        let config = Arc::new(build(settings)?);
        Ok(Self {
            settings: settings.clone(),
            server_name,
            state: Mutex::new(State {
                config,
                stamps,
                clock: CheckClock::new(check_every),
            }),
        })
    }

    /// The name to verify and send as SNI instead of the URL's host, if set.
    pub(crate) fn server_name(&self) -> Option<&ServerName<'static>> {
        self.server_name.as_ref()
    }

    /// The configuration to use for a new connection. At most once per check
    /// interval, stats the files and rebuilds when one changed. A rebuild that
    /// fails (e.g. a key written but not yet its certificate) keeps the previous
    /// configuration and is retried at the next check.
    pub(crate) fn current(&self) -> Arc<ClientConfig> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked on every request: only look at the files when one is due.
        if !state.clock.due() {
            return state.config.clone();
        }
        let files = files(&self.settings);
        if files.is_empty() {
            return state.config.clone();
        }
        let stamps = FileStamp::of_all(&files);
        if stamps != state.stamps {
            match build(&self.settings) {
                Ok(config) => {
                    tracing::info!(files = ?files, "TLS files changed, reloaded");
                    state.config = Arc::new(config);
                    state.stamps = stamps;
                }
                Err(error) => {
                    tracing::warn!(%error, "TLS files changed but cannot be loaded; keeping the previous ones");
                }
            }
        }
        state.config.clone()
    }
}

impl fmt::Debug for TlsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths and flags only: nothing read from the files.
        f.debug_struct("TlsSource")
            .field("ca_file", &self.settings.ca_file)
            .field("cert_file", &self.settings.cert_file)
            .field("key_file", &self.settings.key_file)
            .field("server_name", &self.settings.server_name)
            .field("insecure_skip_verify", &self.settings.insecure_skip_verify)
            .finish()
    }
}

fn files(settings: &TlsConfig) -> Vec<&Path> {
    [&settings.ca_file, &settings.cert_file, &settings.key_file]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .collect()
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Builds a `ClientConfig` from the settings, reading every file.
pub(crate) fn build(settings: &TlsConfig) -> Result<ClientConfig, HttpError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Config {
            field: "tls",
            path: None,
            reason: format!("no usable TLS protocol version: {e}"),
        })?;
    let builder = if settings.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider }))
    } else {
        let roots = match &settings.ca_file {
            Some(path) => Arc::new(roots_from_file(path)?),
            None => system_roots(),
        };
        builder.with_root_certificates(roots)
    };
    let mut config = match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => {
            let chain = certs_from_file("cert_file", cert)?;
            let key_der = key_from_file(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| HttpError::Config {
                    field: "key_file",
                    path: Some(key.clone()),
                    reason: format!("does not fit the certificate in {}: {e}", cert.display()),
                })?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) | (None, Some(_)) => {
            return Err(HttpError::Config {
                field: "cert_file",
                path: None,
                reason: "cert_file and key_file must be set together".into(),
            });
        }
    };
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, HttpError> {
    std::fs::read(path).map_err(|e| HttpError::Config {
        field,
        path: Some(path.to_owned()),
        reason: format!("cannot read: {e}"),
    })
}

/// Every certificate of a PEM file, in order. PEM errors are reported by
/// kind only: their payloads can carry lines of the file.
fn certs_from_file(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let bad = |reason: String| HttpError::Config {
        field,
        path: Some(path.to_owned()),
        reason,
    };
    let pem = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("invalid PEM ({})", pem_error_kind(&e))))?;
    if certs.is_empty() {
        return Err(bad("no PEM CERTIFICATE block found".into()));
    }
    Ok(certs)
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, HttpError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs_from_file("ca_file", path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| HttpError::Config {
            field: "ca_file",
            path: Some(path.to_owned()),
            reason: format!("certificate #{} is not a usable CA: {e}", i + 1),
        })?;
    }
    Ok(roots)
}

/// PKCS#8, PKCS#1 (RSA) or SEC1 (EC) keys, whichever the PEM label says.
fn key_from_file(path: &Path) -> Result<PrivateKeyDer<'static>, HttpError> {
    let pem = read("key_file", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| HttpError::Config {
        field: "key_file",
        path: Some(path.to_owned()),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block found".into()
            }
            other => format!("invalid PEM ({})", pem_error_kind(&other)),
        },
    })
}

fn pem_error_kind(e: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { .. } => "a section has no END line",
        E::IllegalSectionStart { .. } => "malformed BEGIN line",
        E::Base64Decode(_) => "bad base64",
        E::Io(_) => "read error",
        E::NoItemsFound => "no items found",
        _ => "unreadable",
    }
}

/// The system trust store, loaded once per process: it is large, does not
/// rotate like cluster CAs, and every client without `ca_file` shares it.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            for error in &loaded.errors {
                tracing::warn!(%error, "cannot load some system CA certificates");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                tracing::warn!(
                    ignored,
                    "no system CA certificates found; HTTPS targets need tls_config.ca_file"
                );
            }
            Arc::new(roots)
        })
        .clone()
}

/// `insecure_skip_verify`: accepts any server certificate and name, but still
/// checks the handshake signatures so the session keys belong to whoever
/// presented that certificate.
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
