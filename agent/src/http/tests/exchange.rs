//! Plain HTTP: bodies, gzip, limits, auth, timeouts, refused connections, Debug.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::{Response, Version};
use http_body_util::Full;

use super::server::{Handler, ok, raw, serve, settle};
use super::{TIMEOUT, TempDir, get};
use crate::config::{Auth, Credential, HttpClientConfig, Secret, TlsConfig};
use crate::http::HttpClient;

fn plain() -> HttpClient {
    HttpClient::new(&HttpClientConfig::default()).unwrap()
}

fn with_auth(auth: Auth) -> HttpClient {
    let cfg = HttpClientConfig {
        tls: TlsConfig::default(),
        auth: Some(auth),
    };
    HttpClient::with_check_interval(&cfg, Duration::ZERO).unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn gzipped(body: Vec<u8>) -> Handler {
    let body = Bytes::from(body);
    Arc::new(move |_| {
        Response::builder()
            .header("content-encoding", "gzip")
            .body(Full::new(body.clone()))
            .unwrap()
    })
}

#[tokio::test]
async fn plain_http_get() {
    let server = serve(None, ok("hello")).await;
    let resp = plain()
        .send(get(&server.url("http")), TIMEOUT, 0)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.version, Version::HTTP_11);
    assert_eq!(&resp.body[..], b"hello");
    assert_eq!(server.last().authorization, None);
}

#[tokio::test]
async fn gzip_body_is_decoded() {
    let text = "metric_total 1\n".repeat(1000);
    let server = serve(None, gzipped(gzip(text.as_bytes()))).await;
    let resp = plain()
        .send(get(&server.url("http")), TIMEOUT, 0)
        .await
        .unwrap();
    assert_eq!(resp.body, text.as_bytes());
    assert!(resp.headers.get("content-encoding").is_none());
    // Concatenated gzip members decode as one stream (as Go's reader does).
    let mut two = gzip(b"first\n");
    two.extend(gzip(b"second\n"));
    let server = serve(None, gzipped(two)).await;
    let resp = plain()
        .send(get(&server.url("http")), TIMEOUT, 0)
        .await
        .unwrap();
    assert_eq!(&resp.body[..], b"first\nsecond\n");
    // The header without a body (as on 204 or HEAD) is an empty body, not an error.
    let server = serve(None, gzipped(Vec::new())).await;
    let resp = plain()
        .send(get(&server.url("http")), TIMEOUT, 0)
        .await
        .unwrap();
    assert!(resp.body.is_empty());
}

#[tokio::test]
async fn corrupt_gzip_and_unknown_encodings_are_decode_errors() {
    let mut truncated = gzip(&[b'x'; 4096]);
    truncated.truncate(truncated.len() - 4);
    let server = serve(None, gzipped(truncated)).await;
    let err = plain()
        .send(get(&server.url("http")), TIMEOUT, 0)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "decode", "{err}");

    let server = serve(
        None,
        Arc::new(|_| {
            Response::builder()
                .header("content-encoding", "br")
                .body(Full::new(Bytes::from_static(b"x")))
                .unwrap()
        }),
    )
    .await;
    let err = plain()
        .send(get(&server.url("http")), TIMEOUT, 0)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "decode", "{err}");
}

#[tokio::test]
async fn body_limit_applies_to_plain_and_decoded_bodies() {
    let body: &'static str = Box::leak("x".repeat(1000).into_boxed_str());
    let server = serve(None, ok(body)).await;
    let client = plain();
    let exact = client
        .send(get(&server.url("http")), TIMEOUT, 1000)
        .await
        .unwrap();
    assert_eq!(exact.body.len(), 1000);
    let err = client
        .send(get(&server.url("http")), TIMEOUT, 999)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "body_too_large", "{err}");

    // A gzip bomb: 64 MiB of zeros in ~64 KiB, limit 1 MiB.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    let server = serve(None, gzipped(bomb)).await;
    let err = client
        .send(get(&server.url("http")), TIMEOUT, 1 << 20)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "body_too_large", "{err}");
    assert!(err.to_string().contains("1048576"), "{err}");
}

#[tokio::test]
async fn body_limit_applies_without_content_length() {
    let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..10 {
        chunked.extend_from_slice(b"64\r\n");
        chunked.extend_from_slice(&[b'y'; 100]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let server = raw(Some(chunked)).await;
    let url = format!("http://{}/metrics", server.addr);
    let err = plain().send(get(&url), TIMEOUT, 500).await.unwrap_err();
    assert_eq!(err.kind(), "body_too_large", "{err}");
    let resp = plain().send(get(&url), TIMEOUT, 1000).await.unwrap();
    assert_eq!(resp.body.len(), 1000);
}

#[tokio::test]
async fn timeout_covers_a_server_that_never_answers() {
    let server = raw(None).await;
    let url = format!("http://{}/metrics", server.addr);
    let start = Instant::now();
    let err = plain()
        .send(get(&url), Duration::from_millis(200), 0)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "timeout", "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains(&server.addr.to_string()), "{err}");
}

#[tokio::test]
async fn connection_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = plain()
        .send(get(&format!("http://{addr}/metrics")), TIMEOUT, 0)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "connection_refused", "{err}");
    assert!(err.to_string().contains("connection refused"), "{err}");
}

#[tokio::test]
async fn malformed_response_is_http_protocol() {
    let server = raw(Some(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec())).await;
    let url = format!("http://{}/metrics", server.addr);
    let err = plain().send(get(&url), TIMEOUT, 0).await.unwrap_err();
    assert_eq!(err.kind(), "http_protocol", "{err}");
}

#[tokio::test]
async fn bearer_token_file_is_sent_and_reread_after_rotation() {
    let dir = TempDir::new();
    let token = dir.write("token", "first-token\n");
    let client = with_auth(Auth::Authorization {
        kind: "Bearer".into(),
        credential: Credential::File(token.clone()),
    });
    let server = serve(None, ok("ok")).await;
    client
        .send(get(&server.url("http")), TIMEOUT, 0)
        .await
        .unwrap();
    assert_eq!(
        server.last().authorization.as_deref(),
        Some("Bearer first-token")
    );

    settle().await;
    dir.write("token", "second-token \n");
    client
        .send(get(&server.url("http")), TIMEOUT, 0)
        .await
        .unwrap();
    assert_eq!(
        server.last().authorization.as_deref(),
        Some("Bearer second-token")
    );

    std::fs::remove_file(&token).unwrap();
    let err = client
        .send(get(&server.url("http")), TIMEOUT, 0)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "credentials", "{err}");
    assert!(
        err.to_string().contains(&token.display().to_string()),
        "{err}"
    );
    assert!(!err.to_string().contains("second-token"), "{err}");
}

#[tokio::test]
async fn basic_auth_and_custom_scheme_headers() {
    let server = serve(None, ok("ok")).await;
    let dir = TempDir::new();
    let cases = [
        (
            Auth::Basic {
                username: "prom".into(),
                password: Some(Credential::Inline(Secret::new("s3cret"))),
            },
            "Basic cHJvbTpzM2NyZXQ=",
        ),
        (
            Auth::Basic {
                username: "prom".into(),
                password: Some(Credential::File(dir.write("pw", "s3cret\n"))),
            },
            "Basic cHJvbTpzM2NyZXQ=",
        ),
        (
            Auth::Authorization {
                kind: "Token".into(),
                credential: Credential::Inline(Secret::new("abc")),
            },
            "Token abc",
        ),
    ];
    for (auth, want) in cases {
        let mut req = get(&server.url("http"));
        // The configured credential wins over one set by the caller.
        req.headers_mut().insert(
            http::header::AUTHORIZATION,
            "Bearer caller".parse().unwrap(),
        );
        with_auth(auth).send(req, TIMEOUT, 0).await.unwrap();
        assert_eq!(server.last().authorization.as_deref(), Some(want));
    }
}

#[test]
fn debug_never_shows_secrets() {
    let dir = TempDir::new();
    let cfgs = [
        HttpClientConfig {
            tls: TlsConfig::default(),
            auth: Some(Auth::Authorization {
                kind: "Bearer".into(),
                credential: Credential::Inline(Secret::new("inline-secret-xyz")),
            }),
        },
        HttpClientConfig {
            tls: TlsConfig::default(),
            auth: Some(Auth::Authorization {
                kind: "Bearer".into(),
                credential: Credential::File(dir.write("t", "file-secret-xyz")),
            }),
        },
        HttpClientConfig {
            tls: TlsConfig::default(),
            auth: Some(Auth::Basic {
                username: "u".into(),
                password: Some(Credential::Inline(Secret::new("basic-secret-xyz"))),
            }),
        },
    ];
    for cfg in cfgs {
        let client = HttpClient::new(&cfg).unwrap();
        for text in [
            format!("{client:?}"),
            format!("{cfg:?}"),
            format!("{client:#?}"),
        ] {
            assert!(!text.contains("secret-xyz"), "{text}");
            // base64 of "u:basic-secret-xyz" starts with this.
            assert!(!text.contains("dTpiYXNpYy1zZWNyZXQt"), "{text}");
        }
    }
}
