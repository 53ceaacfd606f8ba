//! `Session`: a target's own connection, driven by the task that fetches.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, Version};
use http_body_util::Full;

use super::TIMEOUT;
use super::TempDir;
use super::server::{ok, raw, raw_lingering, serve, settle};
use crate::config::{Auth, Credential, HttpClientConfig, TlsConfig};
use crate::http::{HttpClient, HttpError, Response as Fetched, Session};

fn plain() -> HttpClient {
    HttpClient::new(&HttpClientConfig::default()).unwrap()
}

fn session(client: &HttpClient, url: &str) -> Session {
    client.session(url.parse().unwrap()).unwrap()
}

async fn get(session: &mut Session) -> Result<Fetched, HttpError> {
    let mut headers = HeaderMap::new();
    headers.insert("accept", HeaderValue::from_static("text/plain"));
    session.get(&headers, TIMEOUT, 0).await
}

#[tokio::test]
async fn one_connection_serves_every_get_in_origin_form_with_host() {
    let server = serve(None, ok("hello")).await;
    let url = format!("{}?collect=cpu", server.url("http"));
    let mut session = session(&plain(), &url);
    for _ in 0..3 {
        let resp = get(&mut session).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.version, Version::HTTP_11);
        assert_eq!(&resp.body[..], b"hello");
        let seen = server.last();
        assert_eq!(seen.uri, "/metrics?collect=cpu");
        assert_eq!(seen.host.as_deref(), Some(server.addr.to_string().as_str()));
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    assert_eq!(session.peer(), format!("http://{}", server.addr));
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced() {
    // Answers as if the connection stayed open, then closes it while the
    // session holds it idle: the next GET finds it closed and must be sent
    // again on a new one.
    let server = raw_lingering(
        Some(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()),
        Duration::from_millis(20),
    )
    .await;
    let mut session = session(&plain(), &format!("http://{}/metrics", server.addr));
    for n in 1..=3 {
        let resp = get(&mut session).await.unwrap();
        assert_eq!(&resp.body[..], b"ok");
        assert_eq!(server.accepted.load(Ordering::SeqCst), n);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let handler = Arc::new(|_: &http::request::Parts| {
        Response::builder()
            .header("connection", "close")
            .body(Full::new(Bytes::from_static(b"bye")))
            .unwrap()
    });
    let server = serve(None, handler).await;
    let mut session = session(&plain(), &server.url("http"));
    for _ in 0..3 {
        assert_eq!(&get(&mut session).await.unwrap().body[..], b"bye");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failed_body_drops_the_connection_and_the_next_get_works() {
    let server = serve(None, ok("0123456789")).await;
    let mut session = session(&plain(), &server.url("http"));
    let err = session
        .get(&HeaderMap::new(), TIMEOUT, 5)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "body_too_large", "{err}");
    let resp = session.get(&HeaderMap::new(), TIMEOUT, 0).await.unwrap();
    assert_eq!(&resp.body[..], b"0123456789");
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn timeouts_refusals_and_garbage_are_classified_as_by_the_pool() {
    let silent = raw(None).await;
    let mut s = session(&plain(), &format!("http://{}/metrics", silent.addr));
    for _ in 0..2 {
        let err = s
            .get(&HeaderMap::new(), Duration::from_millis(200), 0)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "timeout", "{err}");
        assert!(err.to_string().contains(&silent.addr.to_string()), "{err}");
    }
    // The timed-out connection was dropped, not reused.
    assert_eq!(silent.accepted.load(Ordering::SeqCst), 2);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let err = get(&mut session(&plain(), &format!("http://{closed}/metrics")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "connection_refused", "{err}");

    let ssh = raw(Some(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec())).await;
    let err = get(&mut session(
        &plain(),
        &format!("http://{}/metrics", ssh.addr),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), "http_protocol", "{err}");
}

#[tokio::test]
async fn the_configured_authorization_is_sent_and_follows_the_file() {
    let dir = TempDir::new();
    let token = dir.write("token", "first");
    let cfg = HttpClientConfig {
        tls: TlsConfig::default(),
        auth: Some(Auth::Authorization {
            kind: "Bearer".into(),
            credential: Credential::File(token),
        }),
    };
    let client = HttpClient::with_check_interval(&cfg, Duration::ZERO).unwrap();
    let server = serve(None, ok("x")).await;
    let mut session = session(&client, &server.url("http"));
    get(&mut session).await.unwrap();
    assert_eq!(server.last().authorization.as_deref(), Some("Bearer first"));
    settle().await;
    dir.write("token", "second");
    get(&mut session).await.unwrap();
    assert_eq!(
        server.last().authorization.as_deref(),
        Some("Bearer second")
    );
}

#[tokio::test]
async fn a_get_the_server_drops_on_a_kept_connection_is_sent_again() {
    // Each connection answers one request, then closes as the next arrives:
    // the race of a server closing an idle connection just as it is reused,
    // which no check beforehand can see.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
                let mut tcp = tokio::io::BufReader::new(tcp);
                let mut line = String::new();
                for answer in [true, false] {
                    loop {
                        line.clear();
                        if tcp.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if answer {
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        tcp.get_mut().write_all(ok).await.unwrap();
                    }
                }
            });
        }
    });
    let mut session = session(&plain(), &format!("http://{addr}/metrics"));
    for n in 1..=3 {
        let resp = get(&mut session).await.unwrap();
        assert_eq!(&resp.body[..], b"ok");
        assert_eq!(accepted.load(Ordering::SeqCst), n);
    }
    server.abort();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// `data` as chunks of `size` bytes, with an extension and a trailer.
fn chunked(data: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in data.chunks(size) {
        out.extend_from_slice(format!("{:x};x=y\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nx-trailer: 1\r\n\r\n");
    out
}

#[tokio::test]
async fn responses_are_framed_and_refused_as_the_pool_frames_and_refuses_them() {
    let text = b"# TYPE up gauge\nup 1\n".repeat(500);
    let packed = gzip(&text);
    let head = |extra: &str| format!("HTTP/1.1 200 OK\r\n{extra}\r\n").into_bytes();
    let with = |head: Vec<u8>, body: &[u8]| [head, body.to_vec()].concat();
    let ok = |body: &[u8]| -> Result<Vec<u8>, &'static str> { Ok(body.to_vec()) };
    // Name, response, body limit, the body or the error kind.
    type Case = (&'static str, Vec<u8>, u64, Result<Vec<u8>, &'static str>);
    let cases: Vec<Case> = vec![
        (
            "content-length",
            with(head("content-length: 5\r\n"), b"hello"),
            0,
            ok(b"hello"),
        ),
        (
            "chunked",
            with(
                head("transfer-encoding: chunked\r\n"),
                &chunked(&text, 1000),
            ),
            0,
            ok(&text),
        ),
        (
            "chunked gzip",
            with(
                head("transfer-encoding: chunked\r\ncontent-encoding: gzip\r\n"),
                &chunked(&packed, 100),
            ),
            0,
            ok(&text),
        ),
        (
            "until close",
            with(b"HTTP/1.0 200 OK\r\n\r\n".to_vec(), &text),
            0,
            ok(&text),
        ),
        (
            "interim 100 first",
            with(
                b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(),
                &with(head("content-length: 2\r\n"), b"ok"),
            ),
            0,
            ok(b"ok"),
        ),
        (
            "no content",
            b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            0,
            ok(b""),
        ),
        (
            "repeated equal lengths",
            with(head("content-length: 2\r\ncontent-length: 2\r\n"), b"ok"),
            0,
            ok(b"ok"),
        ),
        (
            "conflicting lengths",
            with(head("content-length: 2\r\ncontent-length: 3\r\n"), b"ok!"),
            0,
            Err("http_protocol"),
        ),
        (
            "bad length",
            with(head("content-length: two\r\n"), b"ok"),
            0,
            Err("http_protocol"),
        ),
        (
            "bad chunk size",
            with(
                head("transfer-encoding: chunked\r\n"),
                b"zz\r\nok\r\n0\r\n\r\n",
            ),
            0,
            Err("http_protocol"),
        ),
        (
            "chunk longer than its size",
            with(
                head("transfer-encoding: chunked\r\n"),
                b"2\r\nabc\r\n0\r\n\r\n",
            ),
            0,
            Err("http_protocol"),
        ),
        (
            "truncated length",
            with(head("content-length: 10\r\n"), b"abc"),
            0,
            Err("connection_closed"),
        ),
        (
            "truncated chunks",
            with(head("transfer-encoding: chunked\r\n"), b"a\r\nabc"),
            0,
            Err("connection_closed"),
        ),
        (
            "over the limit, chunked",
            with(
                head("transfer-encoding: chunked\r\n"),
                &chunked(&text, 1000),
            ),
            5000,
            Err("body_too_large"),
        ),
        (
            "over the limit, declared",
            with(head("content-length: 5\r\n"), b"hello"),
            4,
            Err("body_too_large"),
        ),
        (
            "over the limit, gzip",
            with(head("content-encoding: gzip\r\n"), &packed),
            5000,
            Err("body_too_large"),
        ),
        (
            "head too large",
            with(head(&format!("x-big: {}\r\n", "a".repeat(1 << 20))), b""),
            0,
            Err("http_protocol"),
        ),
        (
            "not HTTP",
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec(),
            0,
            Err("http_protocol"),
        ),
    ];
    let client = plain();
    for (name, response, limit, want) in cases {
        let server = raw(Some(response)).await;
        let url = format!("http://{}/metrics", server.addr);
        let pooled = client
            .send(super::get(&url), TIMEOUT, limit)
            .await
            .map(|r| r.body.to_vec())
            .map_err(|e| e.kind());
        let own = session(&client, &url)
            .get(&HeaderMap::new(), TIMEOUT, limit)
            .await
            .map(|r| r.body.to_vec())
            .map_err(|e| e.kind());
        assert_eq!(own, want, "{name}: the session");
        // hyper reports broken chunk framing as an I/O error.
        let pool_says = match name {
            "bad chunk size" | "chunk longer than its size" => Err("io"),
            _ => want,
        };
        assert_eq!(pooled, pool_says, "{name}: the pool");
    }
}
