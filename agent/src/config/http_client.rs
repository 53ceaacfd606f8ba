//! TLS and authentication settings shared by scrape configs and remote write
//! endpoints (Prometheus' `HTTPClientConfig` subset we support).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::error::{ConfigError, field};
use super::flag::Flag;
use super::types::{Auth, Credential, HttpClientConfig, Secret, TlsConfig};

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

/// `tls_config:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a tls_config map")]
pub(super) struct RawTls {
    /// CA bundle (PEM) to verify the server with; system roots when unset.
    ca_file: Option<PathBuf>,
    /// Client certificate (PEM); needs `key_file`.
    cert_file: Option<PathBuf>,
    /// Client key (PEM); needs `cert_file`.
    key_file: Option<PathBuf>,
    /// Server name to verify and send as SNI.
    server_name: Option<String>,
    /// Skip verifying the server certificate (default false).
    insecure_skip_verify: Option<Flag>,
}

/// `basic_auth:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a basic_auth map")]
pub(super) struct RawBasicAuth {
    /// User name.
    username: Option<String>,
    /// Password given inline.
    password: Option<Secret>,
    /// File holding the password (re-read when it changes).
    password_file: Option<PathBuf>,
}

/// `authorization:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an authorization map")]
pub(super) struct RawAuthorization {
    /// Scheme of the `Authorization` header (default `Bearer`).
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Credential given inline.
    credentials: Option<Secret>,
    /// File holding the credential (re-read when it changes).
    credentials_file: Option<PathBuf>,
}

/// The HTTP client fields of one scrape config or remote write endpoint,
/// moved out of its raw struct so both share one validation.
#[derive(Debug, Default)]
pub(super) struct RawHttp {
    pub(super) tls_config: Option<RawTls>,
    pub(super) authorization: Option<RawAuthorization>,
    pub(super) basic_auth: Option<RawBasicAuth>,
    pub(super) bearer_token: Option<Secret>,
    pub(super) bearer_token_file: Option<PathBuf>,
}

impl RawHttp {
    /// Validates the fields below `parent` into an [`HttpClientConfig`].
    pub(super) fn build(self, parent: &str) -> Result<HttpClientConfig, ConfigError> {
        let tls = match self.tls_config {
            Some(t) => build_tls(t, &field(parent, "tls_config"))?,
            None => TlsConfig::default(),
        };
        let legacy = match (self.bearer_token, self.bearer_token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    field(parent, "bearer_token"),
                    "and bearer_token_file are both set",
                    "keep only one of them",
                ));
            }
            (Some(token), None) => Some(("bearer_token", Credential::Inline(token))),
            (None, Some(file)) => Some(("bearer_token_file", Credential::File(file))),
            (None, None) => None,
        };
        // Prometheus allows exactly one source of the Authorization header.
        let mut set: Vec<&str> = Vec::new();
        set.extend(self.authorization.as_ref().map(|_| "authorization"));
        set.extend(self.basic_auth.as_ref().map(|_| "basic_auth"));
        set.extend(legacy.as_ref().map(|(name, _)| *name));
        if set.len() > 1 {
            return Err(ConfigError::invalid(
                field(parent, set[1]),
                format!("is set together with {}", set[0]),
                "configure one way of authenticating: authorization, basic_auth or bearer_token_file",
            ));
        }
        let auth = if let Some(a) = self.authorization {
            Some(build_authorization(a, &field(parent, "authorization"))?)
        } else if let Some(b) = self.basic_auth {
            Some(build_basic(b, &field(parent, "basic_auth"))?)
        } else {
            legacy.map(|(_, credential)| Auth::Authorization {
                kind: "Bearer".to_owned(),
                credential,
            })
        };
        Ok(HttpClientConfig { tls, auth })
    }
}

fn build_tls(raw: RawTls, path: &str) -> Result<TlsConfig, ConfigError> {
    match (&raw.cert_file, &raw.key_file) {
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                field(path, "cert_file"),
                "is set without key_file",
                "set key_file to the client certificate's private key, or remove cert_file",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                field(path, "key_file"),
                "is set without cert_file",
                "set cert_file to the client certificate, or remove key_file",
            ));
        }
        _ => {}
    }
    if raw.server_name.as_deref() == Some("") {
        return Err(ConfigError::invalid(
            field(path, "server_name"),
            "is empty",
            "remove it to verify against the target's host name, or give the expected name",
        ));
    }
    Ok(TlsConfig {
        ca_file: raw.ca_file,
        cert_file: raw.cert_file,
        key_file: raw.key_file,
        server_name: raw.server_name,
        insecure_skip_verify: raw.insecure_skip_verify.is_some_and(|f| f.0),
    })
}

fn build_authorization(raw: RawAuthorization, path: &str) -> Result<Auth, ConfigError> {
    let kind = raw.kind.unwrap_or_else(|| "Bearer".to_owned());
    if kind.eq_ignore_ascii_case("basic") {
        return Err(ConfigError::invalid(
            field(path, "type"),
            "(Basic) is not allowed here",
            "use basic_auth with username and password instead",
        ));
    }
    // The scheme goes into a header verbatim: a token68 word, no spaces.
    if kind.is_empty()
        || !kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Err(ConfigError::invalid(
            field(path, "type"),
            format!("({kind:?}) is not an HTTP authentication scheme"),
            "use a single word such as Bearer, or remove type to get Bearer",
        ));
    }
    let credential = match (raw.credentials, raw.credentials_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                field(path, "credentials"),
                "and credentials_file are both set",
                "keep only one of them",
            ));
        }
        (Some(c), None) => Credential::Inline(c),
        (None, Some(f)) => Credential::File(f),
        (None, None) => {
            return Err(ConfigError::invalid(
                field(path, "credentials"),
                "is missing",
                "set credentials or credentials_file",
            ));
        }
    };
    Ok(Auth::Authorization { kind, credential })
}

fn build_basic(raw: RawBasicAuth, path: &str) -> Result<Auth, ConfigError> {
    let password = match (raw.password, raw.password_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                field(path, "password"),
                "and password_file are both set",
                "keep only one of them",
            ));
        }
        (Some(p), None) => Some(Credential::Inline(p)),
        (None, Some(f)) => Some(Credential::File(f)),
        (None, None) => None,
    };
    let username = raw.username.unwrap_or_default();
    if username.is_empty() && password.is_none() {
        return Err(ConfigError::invalid(
            field(path, "username"),
            "and password are both missing",
            "set username and password (or password_file), or remove basic_auth",
        ));
    }
    Ok(Auth::Basic { username, password })
}

/// Makes relative file paths relative to `dir`, the config file's folder,
/// as Prometheus does, so a config means the same from any working directory.
pub(super) fn resolve_paths(http: &mut HttpClientConfig, dir: &std::path::Path) {
    let resolve = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = dir.join(&*p);
        }
    };
    for p in [
        &mut http.tls.ca_file,
        &mut http.tls.cert_file,
        &mut http.tls.key_file,
    ]
    .into_iter()
    .flatten()
    {
        resolve(p);
    }
    match &mut http.auth {
        Some(Auth::Authorization {
            credential: Credential::File(p),
            ..
        })
        | Some(Auth::Basic {
            password: Some(Credential::File(p)),
            ..
        }) => resolve(p),
        _ => {}
    }
}
