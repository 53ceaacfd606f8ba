//! The `Authorization` header from config: inline or from a file that is
//! re-read when it changes (rotated service-account tokens).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::HeaderValue;

use super::error::HttpError;
use super::reload::{CheckClock, FileStamp};
use crate::config::{Auth, Credential};

/// Produces the header value for each request.
pub(crate) struct AuthHeader {
    scheme: Scheme,
    source: Source,
}

enum Scheme {
    /// `Authorization: <kind> <credential>`.
    Authorization(String),
    /// `Authorization: Basic base64(<username>:<password>)`.
    Basic(String),
}

enum Source {
    /// Fixed for the client's lifetime (inline credential or no password).
    Static(HeaderValue),
    /// Read from a file; the value is cached with the file's stamp.
    File { path: PathBuf, cache: Mutex<Cached> },
}

struct Cached {
    /// The header and the stamp of the file it was read from; `None` until
    /// the file could be read.
    loaded: Option<(HeaderValue, FileStamp)>,
    clock: CheckClock,
}

impl AuthHeader {
    /// Prepares the header. A credential file that cannot be read yet is not
    /// fatal (mounted secrets can appear after the agent starts, and one job's
    /// token must not stop the others): requests fail with kind `credentials`
    /// until it can be read. Inline credentials that cannot be a header value
    /// fail here.
    pub(crate) fn new(auth: &Auth, check_every: Duration) -> Result<Self, HttpError> {
        let (scheme, credential) = match auth {
            Auth::Authorization { kind, credential } => {
                (Scheme::Authorization(kind.clone()), Some(credential))
            }
            Auth::Basic { username, password } => {
                (Scheme::Basic(username.clone()), password.as_ref())
            }
        };
        let source = match credential {
            None => Source::Static(scheme.render("", None)?),
            Some(Credential::Inline(secret)) => {
                Source::Static(scheme.render(secret.expose(), None)?)
            }
            Some(Credential::File(path)) => {
                let loaded = scheme
                    .load(path)
                    .inspect_err(|error| {
                        tracing::warn!(%error, "credential file not usable yet; its requests fail until it is");
                    })
                    .ok();
                Source::File {
                    path: path.clone(),
                    cache: Mutex::new(Cached {
                        loaded,
                        clock: CheckClock::new(check_every),
                    }),
                }
            }
        };
        Ok(Self { scheme, source })
    }

    /// The header value for the next request. File credentials are stat'ed at
    /// most once per check interval (every time while unreadable) and re-read
    /// when their stamp changed; an unreadable file fails the request (naming
    /// the file) rather than sending a stale credential forever.
    pub(crate) fn value(&self) -> Result<HeaderValue, HttpError> {
        let (path, cache) = match &self.source {
            Source::Static(value) => return Ok(value.clone()),
            Source::File { path, cache } => (path, cache),
        };
        let mut cached = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.loaded.is_none() || cached.clock.due() {
            let stamp = FileStamp::of(path).map_err(|source| HttpError::Credentials {
                path: Some(path.clone()),
                source,
            })?;
            if cached
                .loaded
                .as_ref()
                .is_none_or(|(_, seen)| *seen != stamp)
            {
                cached.loaded = Some(self.scheme.load(path)?);
            }
        }
        match &cached.loaded {
            Some((value, _)) => Ok(value.clone()),
            None => Err(HttpError::Credentials {
                path: Some(path.clone()),
                source: io::Error::new(io::ErrorKind::NotFound, "not loaded"),
            }),
        }
    }
}

impl Scheme {
    /// Reads the credential file (stamp first, so a write racing the read is
    /// noticed at the next check) and renders the header.
    fn load(&self, path: &Path) -> Result<(HeaderValue, FileStamp), HttpError> {
        let failed = |source| HttpError::Credentials {
            path: Some(path.to_owned()),
            source,
        };
        let stamp = FileStamp::of(path).map_err(failed)?;
        let text = std::fs::read_to_string(path).map_err(failed)?;
        let value = self.render(text.trim_end(), Some(path))?;
        Ok((value, stamp))
    }

    fn render(&self, credential: &str, path: Option<&Path>) -> Result<HeaderValue, HttpError> {
        let text = match self {
            Self::Authorization(kind) => format!("{kind} {credential}"),
            Self::Basic(user) => format!(
                "Basic {}",
                base64(format!("{user}:{credential}").as_bytes())
            ),
        };
        // The header error carries no value, but we word our own anyway.
        let mut value = HeaderValue::from_str(&text).map_err(|_| HttpError::Credentials {
            path: path.map(Path::to_owned),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                "contains characters not allowed in an HTTP header (e.g. a newline inside)",
            ),
        })?;
        // Keeps it out of HPACK tables and out of `HeaderValue`'s Debug.
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match &self.scheme {
            Scheme::Authorization(kind) => kind.as_str(),
            Scheme::Basic(_) => "Basic",
        };
        let mut d = f.debug_struct("AuthHeader");
        d.field("scheme", &scheme);
        match &self.source {
            Source::Static(_) => d.field("credential", &"<inline>"),
            Source::File { path, .. } => d.field("credential_file", path),
        };
        d.finish()
    }
}

/// Standard base64 with padding (RFC 4648 §4). Basic auth needs only this
/// encoder, on short strings, so a dozen lines beat another dependency.
pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn base64_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xfe]), "+//+");
    }

    #[test]
    fn inline_headers() {
        let cases = [
            (
                Auth::Authorization {
                    kind: "Bearer".into(),
                    credential: Credential::Inline(Secret::new("tok")),
                },
                "Bearer tok",
            ),
            (
                Auth::Basic {
                    username: "user".into(),
                    password: Some(Credential::Inline(Secret::new("pa:ss"))),
                },
                "Basic dXNlcjpwYTpzcw==",
            ),
            (
                Auth::Basic {
                    username: "user".into(),
                    password: None,
                },
                "Basic dXNlcjo=",
            ),
        ];
        for (auth, want) in cases {
            let header = AuthHeader::new(&auth, Duration::ZERO).unwrap();
            let value = header.value().unwrap();
            assert_eq!(value.to_str().unwrap(), want);
            assert!(value.is_sensitive());
            let debug = format!("{header:?}");
            assert!(
                !debug.contains("tok") && !debug.contains("pa:ss") && !debug.contains("dXNl"),
                "{debug}"
            );
        }
    }

    #[test]
    fn bad_inline_credential_is_not_echoed() {
        let auth = Auth::Authorization {
            kind: "Bearer".into(),
            credential: Credential::Inline(Secret::new("top\nsecret")),
        };
        let err = AuthHeader::new(&auth, Duration::ZERO).unwrap_err();
        assert_eq!(err.kind(), "credentials");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn file_is_checked_at_most_once_per_interval() {
        let path = std::env::temp_dir().join(format!("crowsnest-auth-{}", std::process::id()));
        std::fs::write(&path, "one").unwrap();
        let auth = Auth::Authorization {
            kind: "Bearer".into(),
            credential: Credential::File(path.clone()),
        };
        let slow = AuthHeader::new(&auth, Duration::from_secs(3600)).unwrap();
        let fast = AuthHeader::new(&auth, Duration::ZERO).unwrap();
        std::fs::write(&path, "second").unwrap();
        assert_eq!(slow.value().unwrap(), "Bearer one");
        assert_eq!(fast.value().unwrap(), "Bearer second");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn missing_file_fails_requests_until_it_appears() {
        let path = std::env::temp_dir().join(format!("crowsnest-late-{}", std::process::id()));
        let auth = Auth::Authorization {
            kind: "Bearer".into(),
            credential: Credential::File(path.clone()),
        };
        // Not fatal at start; each request fails, naming the file.
        let header = AuthHeader::new(&auth, Duration::from_secs(3600)).unwrap();
        let err = header.value().unwrap_err();
        assert_eq!(err.kind(), "credentials");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        // Looked for again at once, not after the check interval.
        std::fs::write(&path, "late\n").unwrap();
        assert_eq!(header.value().unwrap(), "Bearer late");
        std::fs::remove_file(&path).unwrap();
    }
}
