//! TLS: CA bundles, ALPN, mTLS, verification failures, rotation, key formats.

use std::time::Duration;

use http::Version;

use super::pki::{Ca, Leaf, RSA_PKCS8_PEM, unwrap_pkcs8};
use super::server::{ClientAuth, TestServer, ok, serve, settle, tls_config};
use super::{TIMEOUT, TempDir, get};
use crate::config::{HttpClientConfig, TlsConfig};
use crate::http::{HttpClient, HttpError};

const H2_AND_H1: &[&[u8]] = &[b"h2", b"http/1.1"];
const H1_ONLY: &[&[u8]] = &[b"http/1.1"];

/// A CA, a server certificate for 127.0.0.1 and a client certificate, on disk.
struct Fixture {
    ca: Ca,
    server: Leaf,
    dir: TempDir,
    tls: TlsConfig,
}

impl Fixture {
    fn new() -> Self {
        let ca = Ca::new("crowsnest test CA");
        let server = ca.server(&["127.0.0.1", "server.test"]);
        let client = ca.client("scraper");
        let dir = TempDir::new();
        let tls = TlsConfig {
            ca_file: Some(dir.write("ca.pem", &ca.pem)),
            cert_file: Some(dir.write("client.pem", &client.cert_pem)),
            key_file: Some(dir.write("client.key", &client.key_pem)),
            ..TlsConfig::default()
        };
        Self {
            ca,
            server,
            dir,
            tls,
        }
    }

    /// A client whose certificate files [`Fixture::replace_live_cert`] replaces.
    fn live_client(&self) -> HttpClient {
        let good = self.ca.client("scraper");
        client(TlsConfig {
            ca_file: Some(self.dir.write("live-ca.pem", &self.ca.pem)),
            cert_file: Some(self.dir.write("live.pem", &good.cert_pem)),
            key_file: Some(self.dir.write("live.key", &good.key_pem)),
            ..TlsConfig::default()
        })
    }

    /// Replaces the live client's certificate with one the server refuses.
    async fn replace_live_cert(&self) {
        settle().await;
        let other = Ca::new("other CA").client("scraper");
        self.dir.write("live.key", &other.key_pem);
        self.dir.write("live.pem", &other.cert_pem);
    }

    /// A server that requires a client certificate from our CA.
    async fn mtls_server(&self, alpn: &[&[u8]]) -> TestServer {
        let config = tls_config(&self.server, ClientAuth::Required(&self.ca), alpn);
        serve(Some(config), ok("secure")).await
    }
}

fn client(tls: TlsConfig) -> HttpClient {
    HttpClient::with_check_interval(&HttpClientConfig { tls, auth: None }, Duration::ZERO).unwrap()
}

async fn fetch(client: &HttpClient, url: &str) -> Result<crate::http::Response, HttpError> {
    client.send(get(url), TIMEOUT, 0).await
}

#[tokio::test]
async fn https_with_ca_file_and_client_cert_over_http2_and_http1() {
    let fx = Fixture::new();
    let client = client(fx.tls.clone());
    for (alpn, want) in [(H2_AND_H1, Version::HTTP_2), (H1_ONLY, Version::HTTP_11)] {
        let server = fx.mtls_server(alpn).await;
        for _ in 0..3 {
            let resp = fetch(&client, &server.url("https")).await.unwrap();
            assert_eq!(resp.status, 200);
            assert_eq!(resp.version, want);
            assert_eq!(&resp.body[..], b"secure");
            assert_eq!(server.last().version, want);
        }
        // Pooled: three requests, one connection.
        assert_eq!(
            server.connections.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    }
}

#[tokio::test]
async fn wrong_ca_is_unknown_ca() {
    let fx = Fixture::new();
    let server = fx.mtls_server(H2_AND_H1).await;
    let other = Ca::new("someone else");
    let tls = TlsConfig {
        ca_file: Some(fx.dir.write("other.pem", &other.pem)),
        ..fx.tls.clone()
    };
    let err = fetch(&client(tls), &server.url("https")).await.unwrap_err();
    assert_eq!(err.kind(), "unknown_ca", "{err}");
    assert!(err.to_string().contains("tls_config.ca_file"), "{err}");
}

#[tokio::test]
async fn missing_or_untrusted_client_cert_is_bad_certificate() {
    let fx = Fixture::new();
    let no_cert = TlsConfig {
        cert_file: None,
        key_file: None,
        ..fx.tls.clone()
    };
    let stranger = Ca::new("stranger").client("scraper");
    let wrong_cert = TlsConfig {
        cert_file: Some(fx.dir.write("s.pem", &stranger.cert_pem)),
        key_file: Some(fx.dir.write("s.key", &stranger.key_pem)),
        ..fx.tls.clone()
    };
    // The rejection arrives after the TLS 1.3 handshake, through HTTP/2 or HTTP/1.1.
    for alpn in [H2_AND_H1, H1_ONLY] {
        let server = fx.mtls_server(alpn).await;
        for tls in [&no_cert, &wrong_cert] {
            let err = fetch(&client(tls.clone()), &server.url("https"))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), "bad_certificate", "{err}");
            assert!(err.to_string().contains("client certificate"), "{err}");
        }
    }
    // Without a client certificate requirement the same client is fine.
    let open = serve(
        Some(tls_config(&fx.server, ClientAuth::None, H2_AND_H1)),
        ok("open"),
    )
    .await;
    let resp = fetch(&client(no_cert), &open.url("https")).await.unwrap();
    assert_eq!(&resp.body[..], b"open");
}

#[tokio::test]
async fn insecure_skip_verify_accepts_unknown_ca_and_name() {
    let fx = Fixture::new();
    let server = fx.mtls_server(H2_AND_H1).await;
    // System roots do not know our CA.
    let system = TlsConfig {
        ca_file: None,
        ..fx.tls.clone()
    };
    let err = fetch(&client(system.clone()), &server.url("https"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "unknown_ca", "{err}");
    let insecure = TlsConfig {
        insecure_skip_verify: true,
        ..system
    };
    let resp = fetch(&client(insecure), &server.url("https"))
        .await
        .unwrap();
    assert_eq!(&resp.body[..], b"secure");
}

#[tokio::test]
async fn server_name_override_is_verified_and_sent() {
    let fx = Fixture::new();
    let named = fx.ca.server(&["kubelet.internal"]);
    let config = tls_config(&named, ClientAuth::Required(&fx.ca), H2_AND_H1);
    let server = serve(Some(config), ok("named")).await;

    let err = fetch(&client(fx.tls.clone()), &server.url("https"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "tls_name_mismatch", "{err}");

    let wrong = TlsConfig {
        server_name: Some("other.internal".into()),
        ..fx.tls.clone()
    };
    let err = fetch(&client(wrong), &server.url("https"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "tls_name_mismatch", "{err}");

    let right = TlsConfig {
        server_name: Some("kubelet.internal".into()),
        ..fx.tls.clone()
    };
    let resp = fetch(&client(right), &server.url("https")).await.unwrap();
    assert_eq!(&resp.body[..], b"named");
}

#[tokio::test]
async fn rotated_ca_and_client_cert_are_picked_up_without_restart() {
    let fx = Fixture::new();
    let server = fx.mtls_server(H2_AND_H1).await;
    // Start with a CA and a client certificate the server does not accept.
    let old = Ca::new("old CA");
    let old_client = old.client("scraper");
    let ca_file = fx.dir.write("rot-ca.pem", &old.pem);
    let cert_file = fx.dir.write("rot.pem", &old_client.cert_pem);
    let key_file = fx.dir.write("rot.key", &old_client.key_pem);
    let client = client(TlsConfig {
        ca_file: Some(ca_file),
        cert_file: Some(cert_file),
        key_file: Some(key_file),
        ..TlsConfig::default()
    });
    let err = fetch(&client, &server.url("https")).await.unwrap_err();
    assert_eq!(err.kind(), "unknown_ca", "{err}");

    // Rotate the CA bundle (old and new CA, as during a real rotation).
    settle().await;
    fx.dir
        .write("rot-ca.pem", format!("{}{}", old.pem, fx.ca.pem));
    let err = fetch(&client, &server.url("https")).await.unwrap_err();
    assert_eq!(err.kind(), "bad_certificate", "{err}");

    // Rotate the client certificate and key.
    settle().await;
    let new_client = fx.ca.client("scraper");
    fx.dir.write("rot.key", &new_client.key_pem);
    fx.dir.write("rot.pem", &new_client.cert_pem);
    let resp = fetch(&client, &server.url("https")).await.unwrap();
    assert_eq!(&resp.body[..], b"secure");
}

#[tokio::test]
async fn a_replaced_client_cert_is_used_even_with_a_live_http2_connection() {
    let fx = Fixture::new();
    let server = fx.mtls_server(H2_AND_H1).await;
    let client = fx.live_client();
    let resp = fetch(&client, &server.url("https")).await.unwrap();
    assert_eq!(
        resp.version,
        http::Version::HTTP_2,
        "the pooled connection is HTTP/2"
    );

    // Replace the certificate with one the server refuses (as when a
    // compromised certificate is revoked and replaced): the next request must
    // present it, not reuse the live connection made with the old one.
    fx.replace_live_cert().await;
    let err = fetch(&client, &server.url("https")).await.unwrap_err();
    assert_eq!(err.kind(), "bad_certificate", "{err}");
}

#[tokio::test]
async fn half_rotated_key_keeps_the_previous_config() {
    let fx = Fixture::new();
    let server = fx.mtls_server(H2_AND_H1).await;
    let client = client(fx.tls.clone());
    // Only the key is new: it no longer fits the certificate, so the reload
    // fails and the previous (working) configuration stays in use.
    settle().await;
    let key = fx.tls.key_file.clone().unwrap();
    fx.dir.write("client.key", fx.ca.client("x").key_pem);
    assert!(key.exists());
    let resp = fetch(&client, &server.url("https")).await.unwrap();
    assert_eq!(&resp.body[..], b"secure");
}

#[tokio::test]
async fn sec1_ec_and_pkcs1_rsa_client_keys_work() {
    let fx = Fixture::new();
    let server = fx.mtls_server(H2_AND_H1).await;
    let ec = fx.ca.client("scraper");
    let rsa = fx
        .ca
        .client_with_key("scraper", rcgen::KeyPair::from_pem(RSA_PKCS8_PEM).unwrap());
    for (leaf, label) in [(ec, "EC PRIVATE KEY"), (rsa, "RSA PRIVATE KEY")] {
        let key_pem = unwrap_pkcs8(&leaf.key_der, label);
        assert!(key_pem.starts_with(&format!("-----BEGIN {label}-----")));
        let tls = TlsConfig {
            cert_file: Some(fx.dir.write("leaf.pem", &leaf.cert_pem)),
            key_file: Some(fx.dir.write("leaf.key", key_pem)),
            ..fx.tls.clone()
        };
        let resp = fetch(&client(tls), &server.url("https")).await.unwrap();
        assert_eq!(&resp.body[..], b"secure", "{label}");
    }
}

#[test]
fn config_is_shared_until_a_file_changes() {
    use crate::http::tls::TlsSource;
    use std::sync::Arc;

    let fx = Fixture::new();
    let source = TlsSource::new(&fx.tls, Duration::ZERO).unwrap();
    let first = source.current();
    assert!(
        Arc::ptr_eq(&first, &source.current()),
        "unchanged files: same config"
    );
    fx.dir
        .write("ca.pem", format!("{}{}", fx.ca.pem, Ca::new("next").pem));
    assert!(
        !Arc::ptr_eq(&first, &source.current()),
        "rotated CA: new config"
    );

    // With the default interval, a change is not even looked for right away.
    let slow = TlsSource::new(&fx.tls, Duration::from_secs(3600)).unwrap();
    let before = slow.current();
    fx.dir.write("ca.pem", &fx.ca.pem);
    assert!(Arc::ptr_eq(&before, &slow.current()));
}

#[test]
fn unusable_files_fail_at_start_naming_the_file_not_its_contents() {
    let fx = Fixture::new();
    let garbage =
        "-----BEGIN CERTIFICATE-----\nnot base64 SECRETSAUCE!!\n-----END CERTIFICATE-----\n";
    let other = Ca::new("other").client("x");
    let cases: Vec<(&str, TlsConfig, &str)> = vec![
        (
            "missing CA",
            TlsConfig {
                ca_file: Some(fx.dir.path().join("nope.pem")),
                ..fx.tls.clone()
            },
            "ca_file",
        ),
        (
            "garbage CA",
            TlsConfig {
                ca_file: Some(fx.dir.write("garbage.pem", garbage)),
                ..fx.tls.clone()
            },
            "ca_file",
        ),
        (
            "empty CA",
            TlsConfig {
                ca_file: Some(fx.dir.write("empty.pem", "")),
                ..fx.tls.clone()
            },
            "ca_file",
        ),
        (
            "certificate as key",
            TlsConfig {
                key_file: fx.tls.cert_file.clone(),
                ..fx.tls.clone()
            },
            "key_file",
        ),
        (
            "key of another certificate",
            TlsConfig {
                key_file: Some(fx.dir.write("other.key", &other.key_pem)),
                ..fx.tls.clone()
            },
            "key_file",
        ),
        (
            "cert without key",
            TlsConfig {
                key_file: None,
                ..fx.tls.clone()
            },
            "cert_file",
        ),
        (
            "bad server name",
            TlsConfig {
                server_name: Some("not a name".into()),
                ..fx.tls.clone()
            },
            "server_name",
        ),
    ];
    for (case, tls, field) in cases {
        let err = HttpClient::new(&HttpClientConfig { tls, auth: None }).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.kind(), "config", "{case}: {msg}");
        assert!(
            msg.contains(&format!("tls_config.{field}")),
            "{case}: {msg}"
        );
        assert!(
            !msg.contains("SECRETSAUCE") && !msg.contains("PRIVATE KEY-----"),
            "{case}: {msg}"
        );
    }
    let missing = fx.dir.path().join("nope.pem");
    let err = HttpClient::new(&HttpClientConfig {
        tls: TlsConfig {
            ca_file: Some(missing.clone()),
            ..TlsConfig::default()
        },
        auth: None,
    })
    .unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

fn session(client: &HttpClient, url: &str) -> crate::http::Session {
    client.session(url.parse().unwrap()).unwrap()
}

async fn session_get(
    session: &mut crate::http::Session,
) -> Result<crate::http::Response, HttpError> {
    session.get(&http::HeaderMap::new(), TIMEOUT, 0).await
}

#[tokio::test]
async fn a_session_speaks_http1_itself_and_http2_through_the_pool() {
    let fx = Fixture::new();
    let client = client(fx.tls.clone());
    for (alpn, want) in [(H2_AND_H1, Version::HTTP_2), (H1_ONLY, Version::HTTP_11)] {
        let server = fx.mtls_server(alpn).await;
        let mut session = session(&client, &server.url("https"));
        for _ in 0..3 {
            let resp = session_get(&mut session).await.unwrap();
            assert_eq!(resp.version, want);
            assert_eq!(&resp.body[..], b"secure");
        }
        // HTTP/1.1: its own connection, reused. HTTP/2: the connection that
        // learned the protocol, then the pool's one for every request.
        let expected = if want == Version::HTTP_2 { 2 } else { 1 };
        assert_eq!(
            server.connections.load(std::sync::atomic::Ordering::SeqCst),
            expected
        );
    }
}

#[tokio::test]
async fn a_session_names_tls_failures_as_the_pool_does() {
    let fx = Fixture::new();
    let other = Ca::new("someone else");
    let stranger = other.client("scraper");
    let failing = [
        (
            "unknown_ca",
            TlsConfig {
                ca_file: Some(fx.dir.write("other.pem", &other.pem)),
                ..fx.tls.clone()
            },
        ),
        (
            "bad_certificate",
            TlsConfig {
                cert_file: None,
                key_file: None,
                ..fx.tls.clone()
            },
        ),
        (
            "bad_certificate",
            TlsConfig {
                cert_file: Some(fx.dir.write("s.pem", &stranger.cert_pem)),
                key_file: Some(fx.dir.write("s.key", &stranger.key_pem)),
                ..fx.tls.clone()
            },
        ),
        (
            "tls_name_mismatch",
            TlsConfig {
                server_name: Some("other.internal".into()),
                ..fx.tls.clone()
            },
        ),
    ];
    for alpn in [H2_AND_H1, H1_ONLY] {
        let server = fx.mtls_server(alpn).await;
        for (kind, tls) in &failing {
            let client = client(tls.clone());
            let pooled = fetch(&client, &server.url("https")).await.unwrap_err();
            let own = session_get(&mut session(&client, &server.url("https")))
                .await
                .unwrap_err();
            assert_eq!(pooled.kind(), *kind, "{pooled}");
            assert_eq!(own.kind(), *kind, "{own}");
        }
    }
}

#[tokio::test]
async fn a_session_opens_a_new_connection_with_replaced_files() {
    let fx = Fixture::new();
    let server = fx.mtls_server(H1_ONLY).await;
    let client = fx.live_client();
    let mut session = session(&client, &server.url("https"));
    session_get(&mut session).await.unwrap();
    session_get(&mut session).await.unwrap();
    // A replaced certificate (revoked, say) must be presented at once, not
    // after the live connection closes.
    fx.replace_live_cert().await;
    let err = session_get(&mut session).await.unwrap_err();
    assert_eq!(err.kind(), "bad_certificate", "{err}");
    assert_eq!(
        server.connections.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}
